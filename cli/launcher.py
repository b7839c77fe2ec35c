"""`waybill up`: the whole system on one machine, no Docker.

Starts nats-server (JetStream, every write synced), the Temporal dev server
(SQLite file, web UI) from the binaries the PyPI packages installed and the local mail
sink (SMTP, messages in var/mail/, where the customer service sends notices), then the five
services, the worker and the bridge; waits for every `/readyz` (the worker's and the
bridge's on their probe ports), prints the URLs, and keeps them running: a component
that dies is restarted (`cli/supervisor.py`). Everything stops in reverse order on
Ctrl-C or SIGTERM, or when a component keeps dying. State lives under `var/`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from cli.mailsink import DEFAULT_PORT as DEFAULT_MAIL_PORT
from cli.supervisor import Component, GaveUp, Probe, ProcessSupervisor, SupervisionPolicy
from services.common.settings import SERVICE_PORTS, SharedSettings

BIN = Path(sys.executable).parent
# The worker's and the bridge's HTTP probes (`WAYBILL_WORKER_PORT`, `WAYBILL_BRIDGE_PORT`).
PROBE_PORTS: dict[str, int] = {"worker": 8010, "bridge": 8011}


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


def nats_config(var: Path, port: int, monitor_port: int | None = None) -> Path:
    store = var / "nats"
    store.mkdir(parents=True, exist_ok=True)
    conf = var / "nats.conf"
    conf.write_text(
        "# written by `waybill up`\n"
        f"listen: 127.0.0.1:{port}\n"
        + (f"http: 127.0.0.1:{monitor_port}\n" if monitor_port else "")
        + "server_name: waybill-local\n"
        "jetstream {\n"
        f'  store_dir: "{store}"\n'
        "  sync_interval: always\n"
        "}\n"
    )
    return conf


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


def _environment(var: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["WAYBILL_VAR_DIR"] = str(var)
    env.setdefault("PYTHONUNBUFFERED", "1")
    secret_file = var / "jwt-secret"
    if not env.get("WAYBILL_JWT_SECRET"):
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        env["WAYBILL_JWT_SECRET"] = secret_file.read_text().strip()
    return env


def _servers(var: Path, env: dict[str, str]) -> tuple[list[Component], int]:
    """nats-server and the Temporal dev server on their ports (and the Temporal UI's)."""
    nats_port = choose_port("WAYBILL_NATS_PORT", 4222, "NATS")
    temporal_port = choose_port("WAYBILL_TEMPORAL_PORT", 7233, "Temporal")
    ui_port = choose_port("WAYBILL_TEMPORAL_UI_PORT", 8233, "Temporal UI")
    monitor_port = choose_port("WAYBILL_NATS_MONITOR_PORT", 8222, "NATS monitoring")
    env["WAYBILL_NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
    env["WAYBILL_TEMPORAL_ADDRESS"] = f"127.0.0.1:{temporal_port}"
    (var / "temporal").mkdir(exist_ok=True)
    nats = Component(
        "nats",
        (_binary("nats-server"), "-c", str(nats_config(var, nats_port, monitor_port))),
        Probe(nats_port, http=False, health_port=monitor_port),
    )
    temporal = Component(
        "temporal",
        (
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
        ),
        Probe(temporal_port, http=False, health_port=ui_port),
    )
    return [nats, temporal], ui_port


def _mail_sink(var: Path, env: dict[str, str]) -> Component:
    """The local SMTP sink (`cli/mailsink.py`); the customer service sends notices to it."""
    port = choose_port("WAYBILL_MAIL_PORT", DEFAULT_MAIL_PORT, "mail sink")
    env["WAYBILL_CUSTOMER_SMTP_HOST"] = "127.0.0.1"
    env["WAYBILL_CUSTOMER_SMTP_PORT"] = str(port)
    command = (sys.executable, "-m", "cli.mailsink", "--dir", str(var / "mail"))
    return Component("mail", (*command, "--port", str(port)), Probe(port, http=False))


def _processes(env: dict[str, str]) -> list[Component]:
    """The five services, the worker and the bridge, each on its port (chosen here)."""
    components = []
    for service, default in SERVICE_PORTS.items():
        port = choose_port(f"WAYBILL_{service.upper()}_PORT", default, f"{service} service")
        env[f"WAYBILL_{service.upper()}_PORT"] = str(port)
        env[f"WAYBILL_{service.upper()}_URL"] = f"http://127.0.0.1:{port}"
        components.append(
            Component(service, (sys.executable, "-m", f"services.{service}"), Probe(port))
        )
    for name, default in PROBE_PORTS.items():
        port = choose_port(f"WAYBILL_{name.upper()}_PORT", default, f"{name} probe")
        env[f"WAYBILL_{name.upper()}_PORT"] = str(port)
        # A build without the probe still runs: the process is then its only sign of life.
        components.append(
            Component(name, (sys.executable, "-m", f"workflows.{name}"), Probe(port, optional=True))
        )
    return components


def up() -> int:
    """Run the whole system in the foreground until Ctrl-C, restarting what dies."""
    var = Path(SharedSettings().var_dir)
    var.mkdir(parents=True, exist_ok=True)
    env = _environment(var)
    print(f"waybill: starting (logs in {var / 'logs'}/)")
    servers, ui_port = _servers(var, env)
    servers.append(_mail_sink(var, env))
    processes = _processes(env)
    supervisor = ProcessSupervisor(var, env, SupervisionPolicy())
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    # A background job from a non-interactive shell inherits SIGINT ignored; Ctrl-C
    # (or `kill -INT`) must stop the system all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for group, timeout in ((servers, 60.0), (processes, 90.0)):
            for component in group:
                supervisor.start(component)
            if not_ready := supervisor.wait_ready([c.name for c in group], timeout):
                for name in not_ready:
                    print(
                        f"waybill: {name} not ready after {timeout:.0f}s:\n{supervisor.tail(name)}"
                    )
                return 1
            if group is servers:
                nats, temporal, mail = (c.probe.port for c in servers)
                print(f"  NATS      nats://127.0.0.1:{nats}  (JetStream in {var / 'nats'})")
                print(f"  Temporal  127.0.0.1:{temporal}")
                print(f"  Mail      smtp://127.0.0.1:{mail}  (./waybill mail list)")
        endpoints: dict[str, Any] = {
            f"{c.name}_url": f"http://127.0.0.1:{c.probe.port}"
            for c in processes
            if c.name in SERVICE_PORTS
        }
        # `waybill deadletters` and the like in another shell must find these servers,
        # not whatever else listens on the default ports.
        nats_port, temporal_port, mail_port = (c.probe.port for c in servers)
        endpoints["nats_url"] = f"nats://127.0.0.1:{nats_port}"
        endpoints["temporal_address"] = f"127.0.0.1:{temporal_port}"
        endpoints["smtp_url"] = f"smtp://127.0.0.1:{mail_port}"
        endpoints["mail_dir"] = str(var / "mail")
        (var / "endpoints.json").write_text(json.dumps(endpoints, indent=2))
        if not _seed(var, env["WAYBILL_JWT_SECRET"], endpoints):
            return 1
        for c in processes:
            where = "docs" if c.name in SERVICE_PORTS else "readyz"
            print(f"  {c.name:<9} http://127.0.0.1:{c.probe.port}/{where}")
        print(f"  Temporal UI  http://127.0.0.1:{ui_port}")
        print("  traces    ./waybill trace            (span trees from var/traces/)")
        print("  token     ./waybill token --role coordinator")
        print("waybill: ready. Ctrl-C stops everything; a component that dies is restarted.")
        sys.stdout.flush()
        while True:
            supervisor.tick()
            time.sleep(0.2)
    except GaveUp as exc:
        print(f"waybill: stopping everything: {exc}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nwaybill: stopping", flush=True)
        return 0
    finally:
        supervisor.stop()
        signal.signal(signal.SIGTERM, previous)


def _seed(var: Path, secret: str, endpoints: dict[str, Any]) -> bool:
    """Demo data on a fresh system (customers, catalogue, two warehouses with lots)."""
    from cli.demo import Api, seed

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
    print(
        f"  demo data: {len(customers)} customers, 4 SKUs, 2 warehouses, 1 supplier  "
        "(./waybill demo)"
    )
    return True


def endpoints_from_var(var_dir: str) -> dict[str, Any]:
    """The URLs and addresses the running `waybill up` chose (for CLI commands in another
    shell)."""
    path = Path(var_dir) / "endpoints.json"
    if not path.exists():
        return {}
    found: dict[str, Any] = json.loads(path.read_text())
    return {k: v for k, v in found.items() if f"WAYBILL_{k.upper()}" not in os.environ}
