"""The diagnostics ping: proves HTTP -> outbox -> NATS -> bridge -> Temporal -> HTTP."""
