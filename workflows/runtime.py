"""What the worker and the bridge share: settings, connecting to Temporal (pydantic
payloads, OpenTelemetry), and the HTTP probes the launcher, compose and Kubernetes use.

Probes: `GET /healthz` answers 200 while the process lives; `GET /readyz` answers 200
`{"status": "ready"}` when every check passes (Temporal answers, NATS is connected,
every supervised loop runs), else 503 with a problem body whose `detail` names what is
down. The bridge also serves `GET /ops/messaging` (role ops or coordinator): its
consumers' lag and last errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from functools import lru_cache
from typing import ClassVar, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic_settings import SettingsConfigDict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from services.common.bus import Bus
from services.common.problems import install_problem_handlers, problem_response
from services.common.settings import SharedSettings
from services.common.tasks import Supervisor, stop_tasks
from services.common.temporal import interceptors

log = logging.getLogger(__name__)

T = TypeVar("T")
Check = Callable[[], Awaitable[str | None]]  # None when fine, else what is wrong


class WorkflowSettings(SharedSettings):
    """Settings of the worker and bridge processes (`WAYBILL_WORKFLOWS_*`, then `WAYBILL_*`)."""

    service: ClassVar[str] = "workflows"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_WORKFLOWS_", extra="ignore")
    # Sized for a small machine: more in flight only makes workflow tasks time out.
    max_concurrent_activities: int = 50
    max_concurrent_local_activities: int = 50
    max_concurrent_workflow_tasks: int = 50
    credit_hold_timeout_seconds: float = 3 * 24 * 3600
    backorder_timeout_seconds: float = 7 * 24 * 3600
    ship_partial_on_backorder_timeout: bool = True
    # Recall: how often the running workflow stores its report; consignees per trace page.
    recall_report_interval_seconds: float = 3600.0
    recall_page_size: int = 500
    recall_history_limit: int = 5000  # events before a recall run continues as new
    # The periodic replenishment review (schedule `replenishment-review`, made or updated
    # by the worker at start; `WAYBILL_REPLENISHMENT_REVIEW_SECONDS`): 0 removes it.
    replenishment_review_seconds: float = 24 * 3600.0
    replenishment_review_timeout_seconds: float = 900.0  # the one review call
    # Probes (env WAYBILL_WORKER_PORT / _HOST, WAYBILL_BRIDGE_PORT / _HOST); port 0 = none.
    worker_host: str = "127.0.0.1"
    worker_port: int = 8010
    bridge_host: str = "127.0.0.1"
    bridge_port: int = 8011
    # A crashed loop (or a connection attempt) is retried after 1 s doubling to this.
    restart_backoff_max_seconds: float = 30.0


@lru_cache
def get_settings() -> WorkflowSettings:
    return WorkflowSettings()


async def connect(settings: SharedSettings) -> Client:
    """A Temporal client that carries trace context and speaks pydantic."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
    )


async def until_connected(
    what: str, attempt: Callable[[], Awaitable[T]], cap_seconds: float = 30.0
) -> T:
    """`attempt()` again, after 1 s doubling to `cap_seconds`, until it succeeds: a
    process started before its servers waits for them instead of dying."""
    delay = 1.0
    while True:
        try:
            return await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cannot reach %s (%r); trying again in %.0fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(cap_seconds, delay * 2)


async def unless_stopped(stop: asyncio.Event, step: Awaitable[T]) -> T | None:
    """`step`'s result, or None (with `step` cancelled) if `stop` is set first."""
    task = asyncio.ensure_future(step)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    await stop_tasks([stopping])
    if task.done():
        return task.result()
    await stop_tasks([task])
    return None


def temporal_check(client: Client) -> Check:
    async def check() -> str | None:
        try:
            if await client.service_client.check_health(timeout=timedelta(seconds=2)):
                return None
            return "not serving"
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}"

    return check


def nats_check(bus: Bus) -> Check:
    async def check() -> str | None:
        return None if await bus.ready() else "not connected"

    return check


class Probes:
    """The process's readiness: named checks plus its supervised loops."""

    def __init__(self, process: str, supervisor: Supervisor) -> None:
        self.process = process
        self.supervisor = supervisor
        self.checks: dict[str, Check] = {}
        self.routers: list[APIRouter] = []

    async def problems(self) -> dict[str, str]:
        """What keeps the process from being ready (empty when ready)."""
        if not self.checks:
            return {"start-up": "still connecting"}
        names = list(self.checks)
        results = await asyncio.gather(*(self.checks[n]() for n in names))
        down = {name: result for name, result in zip(names, results, strict=True) if result}
        down.update({f"loop {n}": e for n, e in self.supervisor.not_running().items()})
        return down

    def app(self, settings: SharedSettings) -> FastAPI:
        app = FastAPI(title=f"waybill {self.process}", docs_url=None, redoc_url=None)
        app.state.settings = settings
        app.state.jwt_secret = jwt_secret_or_none(settings)
        install_problem_handlers(app)

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "process": self.process}

        @app.get("/readyz")
        async def readyz(request: Request) -> JSONResponse:
            down = await self.problems()
            if down:
                detail = "; ".join(f"{name}: {why}" for name, why in sorted(down.items()))
                response = problem_response(request, 503, "not_ready", "Not ready", detail)
                response.headers["Retry-After"] = "1"
                return response
            return JSONResponse({"status": "ready", "process": self.process})

        for router in self.routers:
            app.include_router(router)
        return app

    @contextlib.asynccontextmanager
    async def serving(self, host: str, port: int, settings: SharedSettings) -> AsyncIterator[None]:
        """Serve the probes on `host:port` (nothing when `port` is 0) while the body runs."""
        if not port:
            yield
            return
        config = uvicorn.Config(
            self.app(settings), host=host, port=port, log_level="warning", lifespan="off"
        )
        server = _ProbeServer(config)
        task = asyncio.create_task(server.serve(), name=f"{self.process} probes")
        try:
            yield
        finally:
            server.should_exit = True
            done, _ = await asyncio.wait({task}, timeout=5)
            if not done:
                await stop_tasks([task], deadline=5)


class _ProbeServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process's main() owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def jwt_secret_or_none(settings: SharedSettings) -> str | None:
    """The JWT secret for `/ops` routes, if one is configured (the probes need none)."""
    try:
        return settings.resolved_jwt_secret()
    except RuntimeError:
        return None


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop`."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
