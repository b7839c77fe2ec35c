"""The FastAPI factory every service uses: lifespan, health, errors, tracing, messaging.

At start-up a service applies its migrations, connects to NATS, makes sure its
streams exist, and starts its outbox relay and consumers; at shutdown it stops
them in reverse. `/healthz` says the process is alive, `/readyz` that its database
and NATS answer. Every app refuses bodies over `max_body_bytes` (limits.py) and serves
the OpenAPI document completed with the shared contract (openapi.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy.orm import Session

from services.common import housekeeping, telemetry
from services.common.bus import Bus
from services.common.context import CorrelationMiddleware
from services.common.db import Database
from services.common.inbox import JetStreamWorker
from services.common.limits import BodyLimitMiddleware
from services.common.migrate import upgrade_to_head
from services.common.openapi import install_contract
from services.common.outbox import WAKE_FLAG, OutboxRelay
from services.common.problems import install_problem_handlers, problem_response
from services.common.settings import ServiceSettings
from services.common.tasks import stop_tasks, supervise

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a running service holds: settings, database, bus, relay, background tasks."""

    settings: ServiceSettings
    db: Database
    bus: Bus
    relay: OutboxRelay
    workers: list[JetStreamWorker] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"/waybill/{self.settings.service}"


WorkersFactory = Callable[[Runtime], Sequence[JetStreamWorker]]
StartHook = Callable[[Runtime], Awaitable[None]]


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    workers: WorkersFactory | None = None,
    consumes: Sequence[str] = (),
    on_start: StartHook | None = None,
) -> FastAPI:
    """Build a service app. `consumes` names the domains whose streams its workers read."""
    service = settings.service

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry.setup_tracing(service, settings.var_dir)
        app.state.jwt_secret = settings.resolved_jwt_secret()
        db = Database(settings.database_url)
        await upgrade_to_head(db, service)
        bus = Bus(settings.nats_url, f"waybill-{service}")
        await bus.connect()
        for domain in {service, *consumes}:
            await bus.ensure_domain_stream(domain)
        await bus.ensure_deadletter_stream()
        relay = OutboxRelay(
            db,
            bus,
            service=service,
            batch=settings.outbox_batch,
            poll_seconds=settings.outbox_poll_seconds,
        )

        def wake_relay(session: Session) -> None:
            if session.info.pop(WAKE_FLAG, False):
                relay.wake()

        db.commit_hooks.append(wake_relay)
        runtime = Runtime(settings=settings, db=db, bus=bus, relay=relay)
        app.state.runtime = runtime
        if on_start is not None:
            await on_start(runtime)
        if settings.relay_enabled:
            runtime.tasks.append(
                asyncio.create_task(supervise(f"{service} outbox relay", relay.run))
            )
        runtime.tasks.append(
            asyncio.create_task(
                supervise(f"{service} housekeeping", lambda: housekeeping.run(db, settings))
            )
        )
        if workers is not None and settings.consumers_enabled:
            runtime.workers = list(workers(runtime))
            for worker in runtime.workers:
                runtime.tasks.append(asyncio.create_task(supervise(worker.durable, worker.run)))
        try:
            yield
        finally:
            await stop_tasks(reversed(runtime.tasks))
            await bus.close()
            await db.dispose()
            telemetry.flush()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    install_problem_handlers(app)
    install_contract(app)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CorrelationMiddleware)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Database and NATS are reachable",
        responses={503: {"description": "A dependency is down (`not_ready`)"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        checks = {"database": "ok", "nats": "ok"}
        try:
            async with runtime.db.reading() as session:
                await session.execute(sa.text("SELECT 1"))
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if not await runtime.bus.ready():
            checks["nats"] = "error: not connected"
        if any(v != "ok" for v in checks.values()):
            response = problem_response(
                request, 503, "not_ready", "Service not ready", "a dependency is down"
            )
            response.headers["Retry-After"] = "1"
            return response
        return JSONResponse({"status": "ready", "service": service, "checks": checks})

    for router in routers:
        app.include_router(router)
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz", exclude_spans=["receive", "send"]
    )
    return app


async def runtime_of(request: Request) -> Runtime:
    """The running service's Runtime (dependency for routes)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the app under uvicorn on the configured host and port."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {settings.service} %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
