"""Dead letters have hands: a poisoned message is listed (CLI and API), replayed after
the fix and handled exactly once, or discarded with who and why."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bus import Bus
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.events import PingRequested
from services.common.inbox import InboxConsumer, PermanentError
from services.common.tasks import stop_tasks
from tests.harness import BIN, RunningService, Stack, auth, eventually


def cli(nats_url: str, var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
    env.update(WAYBILL_NATS_URL=nats_url, WAYBILL_VAR_DIR=str(var_dir))
    return subprocess.run(
        [str(BIN / "waybill"), "deadletters", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def ops(svc: RunningService, method: str, path: str, **kw: Any) -> Any:
    r = await svc.http.request(method, path, headers=auth("ops", subject="olga"), **kw)
    assert r.status_code < 300, r.text
    return r.json()


async def test_poisoned_message_is_listed_replayed_once_or_discarded(
    stack: Stack, bus: Bus, order_db: Database, tmp_path: Path
) -> None:
    svc = await stack.start("returns")
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    broken = True
    handled: list[str] = []
    other: list[str] = []
    twin: list[str] = []

    async def still_broken(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        if event.message == "first":
            raise PermanentError("the twin cannot take first either")
        twin.append(envelope.id)

    async def fragile(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        if broken:
            raise PermanentError(f"cannot take {event.message}")
        handled.append(envelope.id)

    async def healthy(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        other.append(envelope.id)

    consumers = [
        InboxConsumer(
            db=order_db, bus=bus, service="test", name=name, handlers={PingRequested: handler}
        )
        for name, handler in (("fragile", fragile), ("healthy", healthy), ("twin", still_broken))
    ]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        envelopes = []
        for message in ("first", "second"):
            event = PingRequested(ping_id=str(uuid.uuid4()), message=message)
            envelope = Envelope.new(
                source="/t", type=event.TYPE, subject=event.ping_id, data=event.model_dump()
            )
            envelopes.append(envelope)
            await bus.publish(
                envelope.nats_subject, envelope.model_dump_json().encode(), envelope.id
            )

        async def listed() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = (await ops(svc, "GET", "/ops/deadletters"))["items"]
            return items if len(items) == 3 else None

        items = await eventually(listed, message="both dead-lettered, first by the twin too")
        await eventually(lambda: len(other) == 2, message="the healthy consumer took both")
        twins = [i for i in items if i["consumer"] == "test-twin"]
        assert len(twins) == 1 and twins[0]["event_id"] == envelopes[0].id
        # Different entities are handled concurrently: their letters come in any order.
        fragile = {i["event_id"]: i for i in items if i["consumer"] == "test-fragile"}
        first, second = fragile[envelopes[0].id], fragile[envelopes[1].id]
        assert first["event_id"] == envelopes[0].id
        assert first["subject"] == "order.ping.requested"
        assert first["consumer"] == "test-fragile"
        assert first["error"] == "PermanentError: cannot take first"
        assert first["attempts"] == 1 and first["state"] == "open"
        assert first["first_failure"] and first["last_failure"]

        listing = cli(stack.nats_url, tmp_path, "list")
        assert listing.returncode == 0, listing.stderr
        assert f"{first['id']:>6}  order.ping.requested" in listing.stdout
        assert "PermanentError: cannot take first" in listing.stdout
        shown = await ops(svc, "GET", f"/ops/deadletters/{first['id']}")
        assert shown["body"]["id"] == envelopes[0].id

        broken = False  # the fix is deployed
        replayed = cli(stack.nats_url, tmp_path, "replay", str(first["id"]), "--by", "olga")
        assert replayed.returncode == 0, replayed.stderr
        await eventually(lambda: handled == [envelopes[0].id], message="replay handled")
        again = await svc.http.post(
            f"/ops/deadletters/{first['id']}/replay", headers=auth("ops", subject="olga")
        )
        assert again.status_code == 409 and again.json()["code"] == "already_replayed"

        discarded = await ops(
            svc, "POST", f"/ops/deadletters/{second['id']}/discard", json={"reason": "test data"}
        )
        assert discarded["state"] == "discarded"
        assert (discarded["handled_by"], discarded["reason"]) == ("olga", "test data")

        # Wait until both consumers have nothing left, then check nothing ran twice.
        async def caught_up() -> bool:
            for c in consumers:
                info = await bus.js.consumer_info("ORDER", c.durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        await eventually(caught_up, message="consumers caught up")
        assert handled == [envelopes[0].id]
        assert sorted(other) == sorted(e.id for e in envelopes)
        # The replay was the fragile consumer's alone: the twin, still broken, acked it
        # unread instead of dead-lettering it a second time.
        assert twin == [envelopes[1].id]
        left = (await ops(svc, "GET", "/ops/deadletters"))["items"]
        assert [i["id"] for i in left] == [twins[0]["id"]]
        everything = (await ops(svc, "GET", "/ops/deadletters", params={"all": "true"}))["items"]
        assert sorted(i["state"] for i in everything) == ["discarded", "open", "replayed"]
        for bad in ("0", "9223372036854775808", "18446744073709551616"):
            r = await svc.http.get(f"/ops/deadletters/{bad}", headers=auth("ops"))
            assert r.status_code in (404, 422), r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        unknown = cli(stack.nats_url, tmp_path, "show", "99999999999999999999999")
        assert unknown.returncode == 1 and "no dead letter" in unknown.stderr, unknown.stderr
        forbidden = await svc.http.get("/ops/deadletters", headers=auth("coordinator"))
        assert forbidden.status_code == 403
    finally:
        await stop_tasks(tasks)
