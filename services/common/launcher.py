"""`waybill up`: the whole system on one machine, no Docker.

Starts nats-server (JetStream, every write synced) and the Temporal dev server
(SQLite file, web UI) from the binaries the PyPI packages installed, then the five
services, the worker and the bridge; waits for every `/readyz`, prints the URLs,
and stops everything in reverse order on Ctrl-C. State lives under `var/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common.settings import SERVICE_PORTS, SharedSettings

BIN = Path(sys.executable).parent


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def choose_port(env_name: str, default: int, label: str) -> int:
    """The configured port; when the default is taken and none was configured, a free one."""
    configured = os.environ.get(env_name)
    if configured:
        return int(configured)
    if port_free(default):
        return default
    port = free_port()
    print(f"  {label}: port {default} is taken, using {port} (set {env_name} to choose)")
    return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open within {timeout:.0f}s")


def nats_config(var: Path, port: int) -> Path:
    store = var / "nats"
    store.mkdir(parents=True, exist_ok=True)
    conf = var / "nats.conf"
    conf.write_text(
        "# written by `waybill up`\n"
        f"listen: 127.0.0.1:{port}\n"
        "server_name: waybill-local\n"
        "jetstream {\n"
        f'  store_dir: "{store}"\n'
        "  sync_interval: always\n"
        "}\n"
    )
    return conf


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class System:
    var: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str]) -> Child:
        logs = self.var / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def tail(self, child: Child, lines: int = 20) -> str:
        try:
            return "\n".join(child.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        self.children.clear()


def _binary(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: is the virtualenv installed? (./waybill installs it)")
    return found


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def up() -> int:
    """Run the whole system in the foreground until Ctrl-C."""
    shared = SharedSettings()
    var = Path(shared.var_dir)
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["WAYBILL_VAR_DIR"] = str(var)
    env.setdefault("PYTHONUNBUFFERED", "1")
    secret_file = var / "jwt-secret"
    if not env.get("WAYBILL_JWT_SECRET"):
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        env["WAYBILL_JWT_SECRET"] = secret_file.read_text().strip()

    print("waybill: starting (logs in var/logs/)")
    nats_port = choose_port("WAYBILL_NATS_PORT", 4222, "NATS")
    temporal_port = choose_port("WAYBILL_TEMPORAL_PORT", 7233, "Temporal")
    ui_port = choose_port("WAYBILL_TEMPORAL_UI_PORT", 8233, "Temporal UI")
    env["WAYBILL_NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
    env["WAYBILL_TEMPORAL_ADDRESS"] = f"127.0.0.1:{temporal_port}"
    ports = {}
    for service, default in SERVICE_PORTS.items():
        port = choose_port(f"WAYBILL_{service.upper()}_PORT", default, f"{service} service")
        ports[service] = port
        env[f"WAYBILL_{service.upper()}_PORT"] = str(port)
        env[f"WAYBILL_{service.upper()}_URL"] = f"http://127.0.0.1:{port}"

    system = System(var, env)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    # A background job from a non-interactive shell inherits SIGINT ignored; Ctrl-C
    # (or `kill -INT`) must stop the system all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        nats = system.spawn(
            "nats", [_binary("nats-server"), "-c", str(nats_config(var, nats_port))]
        )
        (var / "temporal").mkdir(exist_ok=True)
        temporal = system.spawn(
            "temporal",
            [
                _binary("temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(var / "temporal" / "temporal.db"),
                "--ip",
                "127.0.0.1",
                "--port",
                str(temporal_port),
                "--ui-port",
                str(ui_port),
                "--log-level",
                "warn",
            ],
        )
        for child, port in ((nats, nats_port), (temporal, temporal_port)):
            try:
                wait_for_port(port, 60, child.proc)
            except RuntimeError as exc:
                print(f"waybill: {child.name} failed to start: {exc}\n{system.tail(child)}")
                return 1
        print(f"  NATS      nats://127.0.0.1:{nats_port}  (JetStream in {var / 'nats'})")
        print(f"  Temporal  127.0.0.1:{temporal_port}")

        for service in SERVICE_PORTS:
            system.spawn(service, [sys.executable, "-m", f"services.{service}"])
        system.spawn("worker", [sys.executable, "-m", "workflows.worker"])
        system.spawn("bridge", [sys.executable, "-m", "workflows.bridge"])

        if not _wait_ready(system, ports):
            return 1
        endpoints: dict[str, Any] = {
            f"{svc}_url": f"http://127.0.0.1:{port}" for svc, port in ports.items()
        }
        (var / "endpoints.json").write_text(json.dumps(endpoints, indent=2))
        if not _seed(var, env["WAYBILL_JWT_SECRET"], endpoints):
            return 1
        for service, port in ports.items():
            print(f"  {service:<9} http://127.0.0.1:{port}/docs")
        print(f"  Temporal UI  http://127.0.0.1:{ui_port}")
        print("  traces    ./waybill trace            (span trees from var/traces/)")
        print("  token     ./waybill token --role coordinator")
        print("waybill: ready. Ctrl-C stops everything.", flush=True)
        while True:
            for child in system.children:
                if child.proc.poll() is not None:
                    print(
                        f"waybill: {child.name} exited ({child.proc.returncode}); stopping.\n"
                        f"{system.tail(child)}"
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nwaybill: stopping")
        return 0
    finally:
        system.stop()
        signal.signal(signal.SIGTERM, previous)


def _seed(var: Path, secret: str, endpoints: dict[str, Any]) -> bool:
    """Demo data on a fresh system (customers, catalogue, two warehouses with lots)."""
    from workflows.demo import Api, seed

    async def go() -> dict[str, str]:
        settings = SharedSettings(var_dir=str(var), jwt_secret=secret, **endpoints)
        api = Api.from_settings(settings)
        try:
            return await seed(api)
        finally:
            await api.close()

    try:
        customers = asyncio.run(go())
    except Exception as exc:
        print(f"waybill: seeding demo data failed: {exc}")
        return False
    print(f"  demo data: {len(customers)} customers, 4 SKUs, 2 warehouses  (./waybill demo)")
    return True


def endpoints_from_var(var_dir: str) -> dict[str, Any]:
    """Service URLs the running `waybill up` chose (for CLI commands in another shell)."""
    path = Path(var_dir) / "endpoints.json"
    if not path.exists():
        return {}
    found: dict[str, Any] = json.loads(path.read_text())
    return {k: v for k, v in found.items() if f"WAYBILL_{k.upper()}" not in os.environ}


def _wait_ready(system: System, ports: dict[str, int], timeout: float = 90) -> bool:
    pending = dict(ports)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while pending and time.monotonic() < deadline:
            for child in system.children:
                if child.proc.poll() is not None:
                    print(
                        f"waybill: {child.name} exited during start-up "
                        f"({child.proc.returncode}):\n{system.tail(child)}"
                    )
                    return False
            for service, port in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        del pending[service]
            time.sleep(0.2)
    if pending:
        print(f"waybill: not ready after {timeout:.0f}s: {', '.join(pending)}")
        return False
    return True
