"""Stopping background loops for certain.

One `Task.cancel()` is not enough on Python 3.11: `asyncio.wait_for` (used inside
nats-py's `fetch` and in our own idle waits) returns the inner result instead of
raising when the cancellation lands in the same loop turn as that result, so a
`while True` loop carries on as if nothing happened and `await task` waits forever.
`stop_tasks` cancels again until every task has really finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Iterable

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Iterable[asyncio.Task[object]], *, deadline: float = 30.0) -> None:
    """Cancel `tasks` (repeatedly, if a cancellation was swallowed) and wait for them.

    Exceptions the tasks end with are logged, not raised: this runs at shutdown.
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while pending:
        for task in pending:
            task.cancel()
        left = until - loop.time()
        if left <= 0:
            names = ", ".join(sorted(t.get_name() for t in pending))
            log.error("tasks still running %.0fs after cancellation: %s", deadline, names)
            return
        _, pending = await asyncio.wait(pending, timeout=min(1.0, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                log.error("task %s ended with %r", task.get_name(), exc)


async def with_deadline(step: Awaitable[object], seconds: float, what: str) -> None:
    """Await a shutdown step, giving up (with a log line) after `seconds`."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log.error("%s did not finish within %.0fs; abandoning it", what, seconds)
        log_task_stacks()
        await stop_tasks([task], deadline=5)
        return
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def log_task_stacks() -> None:
    """Log where every task of this loop is waiting (for a shutdown that hangs)."""
    buffer = io.StringIO()
    for task in asyncio.all_tasks():
        buffer.write(f"--- {task.get_name()}\n")
        task.print_stack(limit=8, file=buffer)
    log.error("asyncio tasks:\n%s", buffer.getvalue())
