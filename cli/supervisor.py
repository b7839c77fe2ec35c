"""Process supervision for `waybill up`: start each component, watch it, restart the one
that dies, and stop everything only when asked or when one keeps dying.

A component is a command line and a probe. The supervisor polls every component:

- a process that exited, or whose liveness probe (`GET /healthz`; for nats-server and
  Temporal, whose own ports are not HTTP, `GET /healthz` on the NATS monitoring port and
  the Temporal UI port) failed `liveness_failures` checks in a row after it had
  answered once, is restarted with the same command line and environment, so the same
  port and data directory, after a capped exponential back-off:
  `backoff_initial_seconds · 2^n`, n the restarts within the window, at most
  `backoff_max_seconds`;
- each death, restart and return to readiness is said on the console and appended to
  the component's log (`var/logs/<name>.log`);
- a component that would need more than `restart_limit` restarts within
  `restart_window_seconds` keeps dying: `tick()` raises `GaveUp` naming it and why,
  and the launcher stops everything;
- a probe marked optional that does not answer within `probe_grace_seconds` of a start
  (a build without it) leaves the process itself as the only sign of life, until the
  probe answers after all.

Settings come from `WAYBILL_UP_*` (`SupervisionPolicy`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SupervisionPolicy(BaseSettings):
    """When to restart and when to give up (`WAYBILL_UP_<FIELD>`)."""

    model_config = SettingsConfigDict(env_prefix="WAYBILL_UP_", extra="ignore")

    backoff_initial_seconds: float = Field(0.5, gt=0)
    backoff_max_seconds: float = Field(30.0, gt=0)
    restart_limit: int = Field(5, ge=0)
    restart_window_seconds: float = Field(300.0, gt=0)
    # A busy machine (a test suite, a start of every component at once) can keep a
    # healthy process from answering for seconds: only ~15 s of silence is a hang.
    liveness_interval_seconds: float = Field(5.0, gt=0)
    liveness_failures: int = Field(3, ge=1)
    probe_timeout_seconds: float = Field(5.0, gt=0)
    start_timeout_seconds: float = Field(120.0, gt=0)
    probe_grace_seconds: float = Field(30.0, gt=0)
    stop_timeout_seconds: float = Field(15.0, gt=0)


@dataclass(frozen=True)
class Probe:
    """Where a component answers: HTTP `/healthz` (alive) and `/readyz` (ready), or, for
    servers without HTTP probes, an open TCP port for both."""

    port: int
    http: bool = True
    optional: bool = False
    host: str = "127.0.0.1"
    # A server whose own port is not HTTP may still say it works on another port's
    # `GET /healthz` (NATS monitoring, the Temporal UI): a hung process fails that, where
    # the kernel would still accept a TCP connect for it.
    health_port: int | None = None

    def alive(self, client: httpx.Client) -> bool:
        if self.health_port is not None:
            return _get_ok(client, f"http://{self.host}:{self.health_port}/healthz")
        return self._answers(client, "/healthz")

    def ready(self, client: httpx.Client) -> bool:
        return self._answers(client, "/readyz")

    def _answers(self, client: httpx.Client, path: str) -> bool:
        if not self.http:
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                return True
            return False
        return _get_ok(client, f"http://{self.host}:{self.port}{path}")


def _get_ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Component:
    """One process the launcher runs."""

    name: str
    argv: tuple[str, ...]
    probe: Probe


class GaveUp(Exception):
    """A component keeps dying; the message says which and why."""


@dataclass
class _Running:
    component: Component
    log: Path
    proc: subprocess.Popen[bytes]
    started: float
    restarts: deque[float] = field(default_factory=deque)
    answered: bool = False
    probe_absent: bool = False
    failures: int = 0
    next_check: float = 0.0
    restart_at: float | None = None
    coming_back: bool = False


def describe_exit(code: int) -> str:
    """`code 3` or `killed by SIGKILL`."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"code {code}"


class ProcessSupervisor:
    """Runs components as process groups and keeps them running (see the module docstring)."""

    def __init__(
        self,
        var: Path,
        env: dict[str, str],
        policy: SupervisionPolicy,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.logs = var / "logs"
        self.env = env
        self.policy = policy
        self._say = say
        self._running: dict[str, _Running] = {}
        self._http = httpx.Client(timeout=policy.probe_timeout_seconds)

    def start(self, component: Component) -> None:
        """Start `component` and supervise it from the next `tick()` on."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{component.name}.log"
        self._running[component.name] = _Running(
            component, log, self._spawn(component, log), time.monotonic()
        )

    def _spawn(self, component: Component, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as fh:
            return subprocess.Popen(
                component.argv,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: Ctrl-C reaches it through us
            )

    def tick(self) -> None:
        """One round: notice deaths and failed probes, restart what is due. Raises `GaveUp`."""
        now = time.monotonic()
        for running in self._running.values():
            if running.restart_at is not None:
                if now >= running.restart_at:
                    self._restart(running, now)
                continue
            code = running.proc.poll()
            if code is not None:
                self._schedule_restart(running, f"exited ({describe_exit(code)})", now)
            elif now >= running.next_check:
                running.next_check = now + self.policy.liveness_interval_seconds
                self._check(running, now)

    def _check(self, running: _Running, now: float) -> None:
        probe = running.component.probe
        if probe.alive(self._http):
            if running.probe_absent:
                running.probe_absent = False
                self._note(running, f"answers its probe on port {probe.port} after all")
            running.answered = True
            running.failures = 0
            if running.coming_back and probe.ready(self._http):
                running.coming_back = False
                self._note(running, "is back (ready)")
            return
        if running.probe_absent:
            return
        if not running.answered:
            waited = now - running.started
            if probe.optional and waited > self.policy.probe_grace_seconds:
                running.probe_absent = True
                running.coming_back = False
                self._note(
                    running,
                    f"answers no probe on port {probe.port}; following its process only",
                )
            elif not probe.optional and waited > self.policy.start_timeout_seconds:
                self._kill(running)
                self._schedule_restart(
                    running, f"did not answer on port {probe.port} within {waited:.0f}s", now
                )
            return
        running.failures += 1
        if running.failures >= self.policy.liveness_failures:
            self._kill(running)
            self._schedule_restart(
                running, f"stopped answering on port {probe.port} ({running.failures} checks)", now
            )

    def _schedule_restart(self, running: _Running, why: str, now: float) -> None:
        window = self.policy.restart_window_seconds
        while running.restarts and now - running.restarts[0] > window:
            running.restarts.popleft()
        name = running.component.name
        if len(running.restarts) >= self.policy.restart_limit:
            message = (
                f"{name} {why}, after {len(running.restarts)} restarts within {window:.0f}s: "
                "it keeps dying, giving up"
            )
            self._log(running, message)
            raise GaveUp(f"{message}\n{self.tail(name)}")
        delay = min(
            self.policy.backoff_max_seconds,
            self.policy.backoff_initial_seconds * 2 ** len(running.restarts),
        )
        running.restarts.append(now)
        running.restart_at = now + delay
        self._note(running, f"{why}; restarting in {delay:g}s (restart {len(running.restarts)})")

    def _restart(self, running: _Running, now: float) -> None:
        running.proc = self._spawn(running.component, running.log)
        running.started = now
        running.restart_at = None
        running.answered = running.probe_absent = False
        running.failures = 0
        running.next_check = now
        running.coming_back = True
        self._note(running, f"restarted (pid {running.proc.pid})")

    def _note(self, running: _Running, what: str) -> None:
        line = f"{running.component.name} {what}"
        self._say(f"waybill: {line}")
        self._log(running, line)

    def _log(self, running: _Running, line: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with running.log.open("a") as fh:
            fh.write(f"--- {stamp} waybill: {line}\n")

    def ready(self, name: str) -> bool:
        """Whether `name` runs and answers its readiness probe (or, without one, runs)."""
        running = self._running[name]
        if running.restart_at is not None or running.proc.poll() is not None:
            return False
        return running.probe_absent or running.component.probe.ready(self._http)

    def wait_ready(self, names: Iterable[str], timeout: float) -> list[str]:
        """Supervise until every one of `names` is ready; those still not ready at `timeout`."""
        pending = list(names)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            self.tick()
            pending = [name for name in pending if not self.ready(name)]
            if pending:
                time.sleep(0.2)
        return pending

    def tail(self, name: str, lines: int = 20) -> str:
        """The end of a component's log, for messages about it."""
        try:
            text = self._running[name].log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self, running: _Running) -> None:
        _signal_group(running.proc, signal.SIGKILL)
        running.proc.wait()

    def stop(self) -> None:
        """Stop every component, last started first: SIGTERM, then SIGKILL after a while."""
        for running in reversed(list(self._running.values())):
            proc = running.proc
            _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + self.policy.stop_timeout_seconds
            while not _exited(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            _signal_group(proc, signal.SIGKILL)  # a leader that hung, or what it left behind
            proc.wait()
        self._running.clear()
        self._http.close()


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, without reaping it (see `_signal_group`)."""
    if proc.returncode is not None:
        return True
    with contextlib.suppress(ChildProcessError):
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    return True


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process group the component leads. Only while the leader is not reaped:
    until then its id cannot belong to anyone else's process group."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
