"""Stopping background loops for certain.

One `Task.cancel()` is not enough on Python 3.11: `asyncio.wait_for` (used inside
nats-py's `fetch` and in our own idle waits) returns the inner result instead of
raising when the cancellation lands in the same loop turn as that result, so a
`while True` loop carries on as if nothing happened and `await task` waits forever.
`stop_tasks` cancels again until every task has really finished.

`supervise` keeps a loop running across crashes (with back-off); `Supervisor` holds a
process's loops and says which of them are down, for its readiness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

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


@dataclass
class Loop:
    """One supervised background loop, as a readiness probe sees it."""

    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    state: Loop | None = None,
    initial_seconds: float = 1.0,
    cap_seconds: float = 30.0,
) -> None:
    """Keep a background loop alive: log a crash and start it again after a pause that
    doubles up to `cap_seconds` (back to `initial_seconds` once a run lasted that long).
    A loop that returns has finished on purpose and is not restarted."""
    state = state or Loop(name)
    delay = initial_seconds
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        state.running = True
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if loop.time() - started >= cap_seconds:
                delay = initial_seconds
            log.exception("%s crashed; restarting in %.0fs", name, delay)
        finally:
            state.running = False
        await asyncio.sleep(delay)
        state.restarts += 1
        delay = min(cap_seconds, delay * 2)


@dataclass
class Supervisor:
    """Named loops under `supervise`, for a process whose readiness needs all of them."""

    initial_seconds: float = 1.0
    cap_seconds: float = 30.0
    loops: dict[str, Loop] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        state = self.loops[name] = Loop(name)
        self.tasks.append(
            asyncio.create_task(
                supervise(
                    name,
                    run,
                    state=state,
                    initial_seconds=self.initial_seconds,
                    cap_seconds=self.cap_seconds,
                ),
                name=name,
            )
        )

    def not_running(self) -> dict[str, str]:
        """Each loop that is not running now, with its last error."""
        return {
            loop.name: loop.last_error or "not running"
            for loop in self.loops.values()
            if not loop.running
        }

    async def stop(self) -> None:
        await stop_tasks(reversed(self.tasks))
        self.tasks.clear()
