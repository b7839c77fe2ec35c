"""The launcher's process supervision on small real processes: capped back-off, giving
up, and a stop that leaves nothing of a component's process group behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from cli.launcher import free_port
from cli.supervisor import Component, GaveUp, Probe, ProcessSupervisor, SupervisionPolicy


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_back_off_doubles_up_to_its_cap_then_gives_up(tmp_path: Path) -> None:
    """A process that exits at once is restarted after 0.05, 0.1, 0.1, 0.1 s; the fifth
    death is one more than `restart_limit` allows, and `GaveUp` names it with its log."""
    said: list[str] = []
    policy = SupervisionPolicy(
        backoff_initial_seconds=0.05, backoff_max_seconds=0.1, restart_limit=4
    )
    supervisor = ProcessSupervisor(tmp_path, dict(os.environ), policy, said.append)
    supervisor.start(
        Component("flaky", python("print('flaky here'); raise SystemExit(3)"), Probe(free_port()))
    )
    try:
        with pytest.raises(GaveUp) as gave_up:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                supervisor.tick()
                time.sleep(0.02)
    finally:
        supervisor.stop()
    delays = [
        line.split("restarting in ")[1].split("s ")[0] for line in said if "restarting" in line
    ]
    assert delays == ["0.05", "0.1", "0.1", "0.1"]
    assert "flaky exited (code 3), after 4 restarts" in str(gave_up.value)
    assert "flaky here" in str(gave_up.value)  # the log's tail
    log = (tmp_path / "logs" / "flaky.log").read_text()
    assert log.count("flaky here") == 5 and "keeps dying, giving up" in log


def test_stop_kills_what_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    """A component that ignores SIGTERM is killed after `stop_timeout_seconds`, and so is
    a child it started in its process group."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    supervisor = ProcessSupervisor(
        tmp_path, dict(os.environ), SupervisionPolicy(stop_timeout_seconds=0.5), lambda _: None
    )
    supervisor.start(Component("stubborn", python(code), Probe(free_port())))
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the component did not start its child"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "the component's child outlived the stop"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return "Z"
