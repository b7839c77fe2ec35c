"""Real servers for the tests: nats-server, the Temporal dev server, databases, services.

Everything here starts the real thing on free ports; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

from cli.launcher import free_port
from cli.mailsink import MailSink, Received, messages
from services.common.app import Runtime
from services.common.auth import Role, issue_token
from services.common.settings import SERVICE_PORTS, ServiceSettings
from services.common.tasks import log_task_stacks, stop_tasks
from services.customer.settings import CustomerSettings
from services.order.settings import OrderSettings
from services.returns.settings import ReturnsSettings
from services.shipment.settings import ShipmentSettings
from services.supplier.settings import SupplierSettings

BIN = Path(sys.executable).parent
JWT_SECRET = "test-secret-" + uuid.uuid4().hex
PG_URL = os.environ.get("WAYBILL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
USE_POSTGRES = os.environ.get("WAYBILL_TEST_DB", "sqlite") == "postgres"
SERVICES = tuple(SERVICE_PORTS)
SETTINGS: dict[str, type[ServiceSettings]] = {
    "customer": CustomerSettings,
    "order": OrderSettings,
    "shipment": ShipmentSettings,
    "returns": ReturnsSettings,
    "supplier": SupplierSettings,
}


def reserve_port(port: int = 0) -> socket.socket:
    """A socket bound (not listening) to a loopback port, `0` for any free one.

    While it is held, no other bind and no outgoing connection's ephemeral port can take
    the port, so a service's URL can be handed out long before the service listens."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def wait_port(port: int, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not open after {timeout}s")


@contextlib.contextmanager
def nats_server(tmp: Path, port: int = 0) -> Iterator[str]:
    """A fresh nats-server with JetStream on `port` (a free one by default)."""
    port = port or free_port()
    store = tmp / f"nats-{port}"
    proc = subprocess.Popen(
        [str(BIN / "nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)


class TemporalDevServer:
    """A `temporal server start-dev` of one test, on a fixed port and database file, so it
    can be stopped (an outage) and started again with the same state."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.db_file = tmp / f"temporal-{self.port}.db"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--headless",
                "--db-filename",
                str(self.db_file),
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class SmtpServer:
    """A real SMTP server (the mail sink of `waybill up`, aiosmtpd) on a fixed free port,
    in a thread of its own; `stop()` and `start()` again make an outage, `sink.refuse` and
    `sink.defer` make it refuse recipients (550) or defer them (451)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.sink = MailSink(directory)
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            self.sink, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self, to: str | None = None) -> list[Received]:
        """What it received (to one address, optionally), oldest first."""
        found = messages(self.sink.directory)
        return [m for m in found if to is None or to.lower() in m.to.lower()]


class Databases:
    """Hands out one fresh database per (test, service): a SQLite file, or a PostgreSQL
    schema in the shared test database (creating a schema costs milliseconds)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: list[str] = []

    async def new(self, service: str) -> str:
        name = f"wb_{service}_{uuid.uuid4().hex[:12]}"
        if not USE_POSTGRES:
            return f"sqlite+aiosqlite:///{self.tmp / (name + '.db')}"
        self.created.append(name)
        return f"{PG_URL}?schema={name}"

    async def drop_all(self) -> None:
        if not self.created:
            return
        conn = await asyncpg.connect(PG_URL)
        try:
            for name in self.created:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
        self.created.clear()


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the test process owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningService:
    name: str
    app: FastAPI
    url: str
    server: _QuietServer
    task: asyncio.Task[None]
    http: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def stop(self) -> None:
        self.server.should_exit = True
        done, _ = await asyncio.wait({self.task}, timeout=30)
        if not done:
            log_task_stacks()
            self.server.force_exit = True
            await stop_tasks([self.task], deadline=10)
            raise RuntimeError(f"{self.name} did not stop within 30 s (task stacks logged)")
        self.task.result()
        await self.http.aclose()


async def _serve(server: _QuietServer, sock: socket.socket) -> None:
    # uvicorn exits the process when it cannot start; in a test that SystemExit would
    # escape the shared event loop instead of failing one test.
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn could not start (exit {exc.code}; its log says why)") from None


async def serve_in_process(name: str, app: FastAPI, sock: socket.socket) -> RunningService:
    """Run a service app under uvicorn in this event loop, listening on `sock`."""
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(_serve(server, sock))
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"{name} stopped during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            await stop_tasks([task], deadline=10)
            raise TimeoutError(f"{name} did not start")
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    return RunningService(name, app, url, server, task, httpx.AsyncClient(base_url=url, timeout=30))


def token(role: Role | str, **claims: Any) -> str:
    return issue_token(JWT_SECRET, role, **claims)


def auth(role: Role | str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, **claims)}"}


def create_service_app(service: str, settings: ServiceSettings) -> FastAPI:
    module = __import__(f"services.{service}.app", fromlist=["create"])
    app: FastAPI = module.create(settings)
    return app


def settings_class(service: str) -> type[ServiceSettings]:
    return SETTINGS[service]


@dataclass
class Stack:
    """The services of one test, each on its own database, sharing one NATS and Temporal."""

    nats_url: str
    temporal_address: str
    databases: Databases
    var_dir: Path
    task_queue: str = field(default_factory=lambda: f"tq-{uuid.uuid4().hex[:8]}")
    reserved: dict[str, socket.socket] = field(
        default_factory=lambda: {s: reserve_port() for s in SERVICES}
    )
    ports: dict[str, int] = field(init=False)
    services: dict[str, RunningService] = field(default_factory=dict)
    db_urls: dict[str, str] = field(default_factory=dict)
    service_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflow_overrides: dict[str, Any] = field(default_factory=dict)
    # Where the customer service sends notices: the test's SMTP server (`smtp` fixture)
    # when set, else a port held and never listened on (sending fails and is retried),
    # never a mail sink some `waybill up` on this machine has open on the default port.
    smtp_port: int | None = None
    no_smtp: socket.socket = field(default_factory=reserve_port)

    def __post_init__(self) -> None:
        self.ports = {s: sock.getsockname()[1] for s, sock in self.reserved.items()}

    def claim_socket(self, service: str) -> socket.socket:
        """The service's reserved socket (bound again if a run before it released it)."""
        sock = self.reserved.pop(service, None)
        return sock if sock is not None else reserve_port(self.ports[service])

    def hold_port(self, service: str) -> None:
        if service not in self.reserved:
            with contextlib.suppress(OSError):
                self.reserved[service] = reserve_port(self.ports[service])

    def shared(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "nats_url": self.nats_url,
            "temporal_address": self.temporal_address,
            "temporal_task_queue": self.task_queue,
            "jwt_secret": JWT_SECRET,
            "var_dir": str(self.var_dir),
        }
        for service, port in self.ports.items():
            values[f"{service}_url"] = f"http://127.0.0.1:{port}"
        return values

    async def settings(self, service: str, **overrides: Any) -> ServiceSettings:
        if service not in self.db_urls:
            self.db_urls[service] = await self.databases.new(service)
        values = {
            **self.shared(),
            "port": self.ports[service],
            "database_url": self.db_urls[service],
            "outbox_poll_seconds": 0.2,
            "consumer_backoff_seconds": 0.1,
            **(self._smtp() if service == "customer" else {}),
            **self.service_overrides.get(service, {}),
            **overrides,
        }
        return settings_class(service)(**values)

    def _smtp(self) -> dict[str, Any]:
        """The customer service's mail settings: this test's SMTP server, or none (the
        notices are still made, and wait pending: a recall of thousands of consignees
        does not spend the machine on sends that cannot succeed)."""
        if self.smtp_port is not None:
            return {"smtp_port": self.smtp_port}
        return {"smtp_port": self.no_smtp.getsockname()[1], "notices_enabled": False}

    async def start(self, service: str, **overrides: Any) -> RunningService:
        settings = await self.settings(service, **overrides)
        sock = self.claim_socket(service)
        try:
            running = await serve_in_process(service, create_service_app(service, settings), sock)
        except BaseException:
            sock.close()
            self.hold_port(service)
            raise
        self.services[service] = running
        return running

    async def stop(self, service: str) -> None:
        try:
            await self.services.pop(service).stop()
        finally:
            self.hold_port(service)

    async def close(self) -> None:
        try:
            for name in list(self.services)[::-1]:
                await self.stop(name)
        finally:
            for sock in self.reserved.values():
                sock.close()
            self.reserved.clear()
            self.no_smtp.close()

    def env(self, service: str) -> dict[str, str]:
        """Environment for running `service` as a separate process against this stack."""
        prefix = f"WAYBILL_{service.upper()}_"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
        for key, value in self.shared().items():
            env[f"WAYBILL_{key.upper()}"] = str(value)
        env[prefix + "PORT"] = str(self.ports[service])
        env[prefix + "DATABASE_URL"] = self.db_urls[service]
        env[prefix + "OUTBOX_POLL_SECONDS"] = "0.2"
        if service == "customer":
            for key, value in self._smtp().items():
                env[prefix + key.upper()] = str(value).lower() if value is False else str(value)
        env["WAYBILL_TRACE_DIR"] = os.environ.get("WAYBILL_TRACE_DIR", str(self.var_dir))
        return env


@asynccontextmanager
async def service_process(
    stack: Stack, service: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run `service` as its own OS process (for crash tests); waits until /readyz answers."""
    if service not in stack.db_urls:
        stack.db_urls[service] = await stack.databases.new(service)
    env = {**stack.env(service), **(extra_env or {})}
    stack.claim_socket(service).close()  # the process binds the port itself
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{stack.ports[service]}/readyz"
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} process not ready")
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stack.hold_port(service)


async def eventually(
    check: Any, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(interval)
