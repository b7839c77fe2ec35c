"""Processes the benchmark runs: a private `waybill up` and the constant-endpoint app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.common.auth import Role, issue_token
from services.common.settings import PROJECT_ROOT, SERVICE_PORTS

BIN = Path(sys.executable).parent
READY = "waybill: ready."


def log(message: str) -> None:
    """Progress on stderr; stdout carries only the final table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_http(url: str, proc: asyncio.subprocess.Process) -> None:
    """Until `url` answers 200 (the caller bounds the wait)."""
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)


async def stop_process(proc: asyncio.subprocess.Process, grace: float) -> bool:
    """A clean stop, else SIGKILL after `grace` seconds; False when it had to kill.

    SIGTERM rather than SIGINT: `waybill up` and uvicorn treat both as Ctrl-C, but a
    SIGINT ignored by a parent (a shell's background job) stays ignored in the child.
    """
    if proc.returncode is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
        return True
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        return False


@dataclass
class System:
    """A private `waybill up`: its own var directory, every port a free one."""

    var: Path
    log_path: Path
    settings: Mapping[str, str] = field(default_factory=dict)  # extra WAYBILL_* values
    ports: dict[str, int] = field(
        default_factory=lambda: {
            name: free_port() for name in ("nats", "temporal", "temporal_ui", *SERVICE_PORTS)
        }
    )
    proc: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.ports['temporal']}"

    def token(self, role: Role = Role.COORDINATOR) -> str:
        secret = (self.var / "jwt-secret").read_text().strip()
        return issue_token(secret, role, subject="waybill-bench", ttl_seconds=6 * 3600)

    def env(self) -> dict[str, str]:
        """This shell's environment without any Waybill or OTLP setting, plus ours."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("WAYBILL_") and k != "OTEL_EXPORTER_OTLP_ENDPOINT"
        }
        env |= {
            "WAYBILL_VAR_DIR": str(self.var),
            "WAYBILL_NATS_PORT": str(self.ports["nats"]),
            "WAYBILL_TEMPORAL_PORT": str(self.ports["temporal"]),
            "WAYBILL_TEMPORAL_UI_PORT": str(self.ports["temporal_ui"]),
            "PYTHONUNBUFFERED": "1",
        }
        for service in SERVICE_PORTS:
            env[f"WAYBILL_{service.upper()}_PORT"] = str(self.ports[service])
        return env | dict(self.settings)

    async def start(self, ready_within: float = 300) -> None:
        """Run `waybill up` and wait for its ready line (it seeds the demo data first)."""
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN / "waybill"),
            "up",
            env=self.env(),
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the bench, which stops it cleanly
        )
        ready = asyncio.Event()
        self._drain = asyncio.create_task(self._read_output(ready))
        waiter = asyncio.create_task(ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        try:
            await asyncio.wait(
                {waiter, exited}, timeout=ready_within, return_when="FIRST_COMPLETED"
            )
        finally:
            waiter.cancel()
            exited.cancel()
        if not ready.is_set():
            tail = "\n".join(self.output[-30:])
            raise RuntimeError(f"`waybill up` did not become ready:\n{tail}")

    async def _read_output(self, ready: asyncio.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("w") as fh:
            while raw := await self.proc.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                self.output.append(line)
                fh.write(line + "\n")
                fh.flush()
                if line.startswith(READY):
                    ready.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        if self.proc is not None and not await stop_process(self.proc, grace=180):
            log(f"`waybill up` had to be killed; its children may still run ({self.var})")
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 10)


@contextlib.asynccontextmanager
async def private_system(
    prefix: str, *, keep: bool = False, settings: Mapping[str, str] | None = None
) -> AsyncIterator[System]:
    """A `System` in a temporary directory (`system.var.parent`), stopped afterwards; the
    directory is removed unless `keep` or a failure says otherwise."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    system = System(var=workdir / "var", log_path=workdir / "up.log", settings=settings or {})
    failed = True
    log(f"starting a private `waybill up` in {workdir}")
    try:
        yield system
        failed = False
    finally:
        log("stopping the system")
        await system.stop()
        if failed or keep:
            log(f"kept {workdir} (var/logs/ has every process's log, up.log its output)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def constant_server() -> AsyncIterator[str]:
    """The bare constant-endpoint app under uvicorn in its own process; yields its URL."""
    from bench.constant_app import PATH

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.constant_app",
        str(port),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60):
            await wait_http(url + PATH, proc)
        yield url
    finally:
        await stop_process(proc, grace=15)
