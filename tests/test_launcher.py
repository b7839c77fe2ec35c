"""`waybill up` brings the whole system up, restarts a component that dies, gives up on
one that keeps dying, and stops cleanly: the real launcher as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cli.launcher import PROBE_PORTS, free_port
from services.common.auth import issue_token
from services.common.bus import Bus
from services.common.envelope import Envelope
from services.common.events import ReturnRejected
from tests.harness import BIN, SERVICES

SERVERS = ("nats", "nats_monitor", "temporal", "temporal_ui", "mail")


class Launcher:
    """`waybill up` on free ports in its own var/, its console read as it comes."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.var = tmp_path / "var"
        self.ports = {name: free_port() for name in (*SERVERS, *SERVICES, *PROBE_PORTS)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
        env["WAYBILL_VAR_DIR"] = str(self.var)
        env.update({f"WAYBILL_{name.upper()}_PORT": str(p) for name, p in self.ports.items()})
        env.update(settings)
        self.proc = subprocess.Popen(
            [str(BIN / "waybill"), "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def console(self) -> str:
        return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = 120, since: int = 0) -> None:
        """Until the console shows `text` (after its first `since` characters); fails at
        once if the launcher exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.console[since:]:
            assert self.proc.poll() is None, f"the launcher exited:\n{self.console}"
            assert time.monotonic() < deadline, f"no {text!r} on the console:\n{self.console}"
            time.sleep(0.2)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def token(self) -> str:
        return issue_token((self.var / "jwt-secret").read_text().strip(), "ops")

    def stop(self) -> int:
        """Ctrl-C; its exit code once it has stopped."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=90)
        self._reader.join(timeout=10)
        return code

    def dump(self) -> None:
        """Print the console and every component's log, to say why a step failed."""
        print(f"--- console ---\n{self.console}")
        for log in sorted((self.var / "logs").glob("*.log")):
            print(f"--- {log.name} (last 60 lines) ---")
            print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))

    def assert_nothing_listens(self) -> None:
        for name, port in self.ports.items():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                raise AssertionError(f"{name} still listens on {port} after the launcher stopped")


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def listening_pid(port: int) -> int | None:
    """The process listening on a loopback TCP port (from /proc), or None."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ping_round_trip(launcher: Launcher, timeout: float) -> None:
    """A ping through the order service, the bridge, Temporal and the worker is answered."""
    headers = {"Authorization": f"Bearer {launcher.token()}"}
    with httpx.Client(base_url=launcher.url("order"), headers=headers, timeout=10) as http:
        r = http.post(
            "/diagnostics/pings",
            json={"message": "up"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 202, r.text
        ping = f"/diagnostics/pings/{r.json()['id']}"
        wait_until(
            lambda: http.get(ping).json()["status"] == "answered",
            timeout,
            "the ping answered through the running system",
        )


def notice_reaches_the_mail_sink(launcher: Launcher, nats_url: str, env: dict[str, str]) -> None:
    """An event that notifies a seeded customer ends as mail in the sink's var/mail/,
    which `waybill mail list` prints: the customer service is pointed at the sink."""
    headers = {"Authorization": f"Bearer {launcher.token()}"}
    customers = httpx.get(f"{launcher.url('customer')}/customers", headers=headers).json()
    customer = next(c for c in customers["items"] if c["email"])
    event = ReturnRejected(
        return_id=f"RET-{uuid.uuid4().hex[:8]}",
        order_id="ORD-UP",
        customer_id=customer["id"],
        reason="launcher test",
        rejected_by="test",
    )

    async def publish() -> None:
        bus = Bus(nats_url, "launcher-test")
        await bus.connect()
        try:
            envelope = Envelope.new(
                source="/tests",
                type=event.TYPE,
                subject=event.return_id,
                data=event.model_dump(mode="json"),
            )
            await bus.publish(
                envelope.nats_subject, envelope.model_dump_json().encode(), envelope.id
            )
        finally:
            await bus.close()

    asyncio.run(publish())

    def listed() -> bool:
        done = subprocess.run(
            [str(BIN / "waybill"), "mail", "list"],
            env={**env, "WAYBILL_VAR_DIR": str(launcher.var)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode == 0 and event.return_id in done.stdout

    wait_until(listed, 60, "the notice in `waybill mail list`")


@pytest.mark.timeout(480)
def test_up_restarts_what_dies_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """Everything comes up on the ports it was given, the worker and the bridge waited on
    through their probes; `kill -9` of the Temporal dev server and of a service brings each
    back on the same port (said on the console and in its log) while the rest runs on; a
    round trip works afterwards; a hung bridge, and a hung Temporal, fail their liveness
    probes and are replaced; Ctrl-C leaves nothing listening."""
    launcher = Launcher(tmp_path, WAYBILL_UP_BACKOFF_INITIAL_SECONDS="0.2")
    try:
        launcher.wait_for("ready. Ctrl-C")
        text = launcher.console
        for service in SERVICES:
            assert f"{launcher.url(service)}/docs" in text
        for process in PROBE_PORTS:
            assert f"{launcher.url(process)}/readyz" in text
        assert "Temporal UI" in text
        assert (launcher.var / "nats.conf").read_text().count("sync_interval: always") == 1
        ping_round_trip(launcher, timeout=30)
        # Another shell's `waybill deadletters` finds this NATS, not the default port's.
        endpoints = json.loads((launcher.var / "endpoints.json").read_text())
        assert endpoints["nats_url"] == f"nats://127.0.0.1:{launcher.ports['nats']}"
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
        listed = subprocess.run(
            [str(BIN / "waybill"), "deadletters", "list"],
            env={**cli_env, "WAYBILL_VAR_DIR": str(launcher.var)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert endpoints["smtp_url"] == f"smtp://127.0.0.1:{launcher.ports['mail']}"
        notice_reaches_the_mail_sink(launcher, endpoints["nats_url"], cli_env)

        victims = {name: listening_pid(launcher.ports[name]) for name in ("temporal", "order")}
        for name, pid in victims.items():
            assert pid is not None, f"nothing listens for {name}"
            os.kill(pid, signal.SIGKILL)
        for name, pid in victims.items():
            launcher.wait_for(f"waybill: {name} exited (killed by SIGKILL); restarting in")
            launcher.wait_for(f"waybill: {name} is back (ready)", timeout=120)
            port = launcher.ports[name]
            assert listening_pid(port) not in (None, pid), f"{name} is not back on {port}"
            log = (launcher.var / "logs" / f"{name}.log").read_text()
            assert f"waybill: {name} exited (killed by SIGKILL)" in log
            assert f"waybill: {name} restarted" in log
        assert ready(launcher.url("order"))
        assert launcher.proc.poll() is None, launcher.console
        ping_round_trip(launcher, timeout=90)
        for process in PROBE_PORTS:
            assert ready(launcher.url(process)), process  # reconnected to Temporal

        # A bridge that hangs (stopped, not dead) fails its liveness probe and is replaced.
        hung = listening_pid(launcher.ports["bridge"])
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        launcher.wait_for(f"bridge stopped answering on port {launcher.ports['bridge']}")
        launcher.wait_for("waybill: bridge is back (ready)")
        assert listening_pid(launcher.ports["bridge"]) not in (None, hung)
        ping_round_trip(launcher, timeout=60)

        # So does a hung Temporal, whose gRPC port the kernel still accepts connections on.
        frozen = listening_pid(launcher.ports["temporal"])
        assert frozen is not None
        seen = len(launcher.console)
        os.kill(frozen, signal.SIGSTOP)
        launcher.wait_for(f"temporal stopped answering on port {launcher.ports['temporal']}")
        launcher.wait_for("waybill: temporal is back (ready)", timeout=180, since=seen)
        assert listening_pid(launcher.ports["temporal"]) not in (None, frozen)
        ping_round_trip(launcher, timeout=90)
    except BaseException:
        launcher.dump()  # shown by pytest beside the failure
        raise
    finally:
        code = launcher.stop()
    assert code == 0, launcher.console
    launcher.assert_nothing_listens()


@pytest.mark.timeout(300)
def test_up_gives_up_on_a_component_that_keeps_dying(tmp_path: Path) -> None:
    """A service that cannot start (its database path runs through a file) is restarted
    with back-off until it has used its restarts, then everything stops with a non-zero
    exit that names it and says why."""
    (tmp_path / "a-file").write_text("")
    launcher = Launcher(
        tmp_path,
        WAYBILL_RETURNS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'returns.db'}",
        WAYBILL_UP_RESTART_LIMIT="2",
        WAYBILL_UP_BACKOFF_INITIAL_SECONDS="0.1",
    )
    try:
        code = launcher.proc.wait(timeout=180)
    finally:
        launcher.stop()
    text = launcher.console
    assert code == 1, text
    assert "waybill: returns exited (code 3); restarting in 0.1s (restart 1)" in text
    assert "waybill: returns exited (code 3); restarting in 0.2s (restart 2)" in text
    assert "returns exited (code 3), after 2 restarts within 300s: it keeps dying" in text
    assert "ready. Ctrl-C" not in text
    assert "keeps dying, giving up" in (launcher.var / "logs" / "returns.log").read_text()
    launcher.assert_nothing_listens()
