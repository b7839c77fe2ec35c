"""Background loops stop even when a cancellation is swallowed."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from services.common.tasks import Supervisor, stop_tasks, with_deadline
from tests.harness import eventually


async def test_a_loop_that_swallows_one_cancellation_still_stops() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                # What 3.11's wait_for does when a result and the cancel race.
                swallowed += 1
                if swallowed > 2:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop_tasks([task], deadline=10)
    assert task.cancelled()
    assert swallowed == 3


async def test_a_task_that_never_stops_is_abandoned_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = False

    async def immortal() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if release:
                    raise

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await stop_tasks([task], deadline=1.5)
    assert not task.done()
    assert "immortal" in caplog.text
    release = True
    await stop_tasks([task], deadline=5)
    assert task.cancelled()


async def test_a_shutdown_step_that_hangs_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        await with_deadline(asyncio.sleep(3600), 0.2, "slow step")
    assert "slow step did not finish" in caplog.text
    assert "asyncio tasks" in caplog.text


async def test_a_crashed_loop_restarts_with_growing_pauses() -> None:
    """`Supervisor` restarts a crashing loop, doubling the pause, and reports it down
    meanwhile; a loop that returns is not restarted."""
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def flaky() -> None:
        runs.append(loop.time())
        if len(runs) < 4:
            raise RuntimeError(f"crash {len(runs)}")
        await asyncio.sleep(3600)

    supervisor = Supervisor(initial_seconds=0.05, cap_seconds=0.2)
    supervisor.start("flaky", flaky)
    await asyncio.sleep(0.01)
    assert supervisor.not_running() == {"flaky": "RuntimeError: crash 1"}
    await eventually(lambda: len(runs) == 4 and not supervisor.not_running(), 5, 0.01)
    assert supervisor.loops["flaky"].restarts == 3
    pauses = [b - a for a, b in itertools.pairwise(runs)]
    assert pauses[0] >= 0.05 and pauses[1] >= 0.1 and pauses[2] >= 0.2
    await supervisor.stop()
