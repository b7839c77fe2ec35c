"""Plumbing shared by every Waybill service: no business rules live here.

Modules: settings, db, migrate, problems, auth, telemetry, envelope/events (the
event catalogue), bus (NATS JetStream), outbox, inbox (idempotent consumers),
idempotency (Idempotency-Key), app (the FastAPI factory), launcher and cli.
"""
