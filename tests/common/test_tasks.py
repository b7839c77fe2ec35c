"""Background loops stop even when a cancellation is swallowed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.common.tasks import stop_tasks, with_deadline


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
