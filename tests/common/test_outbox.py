"""Transactional outbox: a crash between commit and publish loses nothing and doubles nothing."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from services.common.bus import Bus
from services.common.db import Database
from services.common.events import PingRequested
from services.common.outbox import stage
from services.common.problems import Unprocessable
from services.common.tables import outbox
from tests.harness import Stack, auth, eventually, service_process


async def stream_messages(bus: Bus, subject: str) -> list[tuple[str, dict[str, object]]]:
    """Every message on `subject` in the ORDER stream, as (Nats-Msg-Id, envelope)."""
    try:
        info = await bus.js.stream_info("ORDER")
    except Exception:
        return []
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg("ORDER", seq)
        except Exception:
            continue
        if msg.subject == subject:
            out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data or b"")))
    return out


async def create_ping(port: int) -> dict[str, object] | None:
    """Create a ping; None when the process died (by design) before its answer went out:
    the relay, woken by the commit, may reach the crash point first."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        try:
            r = await http.post(
                "/diagnostics/pings",
                json={"message": "durable"},
                headers={**auth("ops"), "Idempotency-Key": "crash-1"},
            )
        except httpx.RemoteProtocolError:
            return None
        assert r.status_code == 202, r.text
        body: dict[str, object] = r.json()
        return body


@pytest.mark.parametrize("crash_at", ["outbox.before_publish", "outbox.after_publish"])
async def test_crash_around_publish_is_published_exactly_once(
    stack: Stack, bus: Bus, crash_at: str
) -> None:
    """The process dies after the commit (before or after the publish); a restart
    publishes the event, and the stream holds it exactly once."""
    port = stack.ports["order"]
    async with service_process(stack, "order", {"WAYBILL_CRASH_AT": crash_at}) as proc:
        ping = await create_ping(port)
        code = await eventually(lambda: proc.poll(), message="the crash")
        assert code == 86
    published = await stream_messages(bus, "order.ping.requested")
    # Before: nothing left the process. After: the event is out, but its row is unmarked.
    assert len(published) == (0 if crash_at == "outbox.before_publish" else 1)

    async with service_process(stack, "order"):
        db = Database(stack.db_urls["order"])

        async def settled() -> bool:
            async with db.reading() as s:
                pending = (
                    await s.execute(
                        sa.select(sa.func.count())
                        .select_from(outbox)
                        .where(outbox.c.published_at.is_(None))
                    )
                ).scalar_one()
            return pending == 0

        await eventually(settled, message="outbox drained after restart")
        await db.dispose()

    published = await stream_messages(bus, "order.ping.requested")
    assert len(published) == 1
    msg_id, envelope = published[0]
    assert envelope["data"]["message"] == "durable"  # type: ignore[index]
    if ping is not None:
        assert envelope["data"] == {"ping_id": ping["id"], "message": "durable"}
    assert msg_id == envelope["id"]
    assert envelope["specversion"] == "1.0" and envelope["type"] == "order.ping.requested.v1"
    assert envelope["subject"] == ping["id"]
    assert envelope["traceparent"]


def ping(ping_id: str, message: str) -> PingRequested:
    return PingRequested(ping_id=ping_id, message=message)


async def test_stage_refuses_an_event_too_big_to_publish(stack: Stack) -> None:
    """The request fails before its commit, with a 422 problem, not later in the relay."""
    svc = await stack.start("returns")
    with pytest.raises(Unprocessable) as refused:
        async with svc.runtime.db.transaction() as session:
            await stage(session, "/t", ping("p", "x" * 2000), subject="p", max_bytes=1000)
    assert refused.value.code == "event_too_large"
    with pytest.raises(Unprocessable):  # the configured default bound
        async with svc.runtime.db.transaction() as session:
            await stage(session, "/t", ping("p", "x" * 600_000), subject="p")
    messaging = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
    assert messaging["outbox"]["pending"] == 0


async def test_a_copy_is_published_on_its_own_subject_under_its_own_id(
    stack: Stack, bus: Bus
) -> None:
    """`nats_subject` sends a copy to one recipient's subject; staged again, it has an
    envelope id of its own, so the stream keeps both."""
    svc = await stack.start("order")
    async with svc.runtime.db.transaction() as session:
        first = await stage(session, "/t", ping("p", "hi"), subject="p")
        copy = await stage(
            session, "/t", ping("p", "hi"), subject="p", nats_subject="order.ping.copies"
        )
    [(copy_id, envelope)] = await eventually(lambda: stream_messages(bus, "order.ping.copies"))
    assert copy_id == envelope["id"] == copy.id != first.id
    assert envelope["type"] == "order.ping.requested.v1"
    [(first_id, _)] = await eventually(lambda: stream_messages(bus, "order.ping.requested"))
    assert first_id == first.id


async def test_a_row_that_can_never_publish_is_parked_and_blocks_nothing(
    stack: Stack, bus: Bus
) -> None:
    """A row bigger than the server's max payload (staged before the bound existed) is
    parked where ops see it; its entity's later event and other entities still go out."""
    await bus.ensure_domain_stream("order")
    svc = await stack.start("returns")
    async with svc.runtime.db.transaction() as session:
        huge = await stage(session, "/t", ping("a", "x" * 1_500_000), subject="a", max_bytes=10**8)
        after = await stage(session, "/t", ping("a", "after"), subject="a")
        other = await stage(session, "/t", ping("b", "other"), subject="b")

    async def published() -> bool:
        ids = {e["id"] for _, e in await stream_messages(bus, "order.ping.requested")}
        return {after.id, other.id} <= ids

    await eventually(published, message="later and other events published")
    messaging = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
    assert messaging["outbox"]["pending"] == 0
    [parked] = messaging["outbox"]["parked"]
    assert parked["event_id"] == huge.id
    assert "MaxPayloadError" in parked["error"]
    letters = (await svc.http.get("/ops/deadletters", headers=auth("ops"))).json()["items"]
    [letter] = letters
    assert (letter["consumer"], letter["event_id"]) == ("returns-outbox", huge.id)
    refused = await svc.http.post(f"/ops/deadletters/{letter['id']}/replay", headers=auth("ops"))
    assert refused.status_code == 409 and refused.json()["code"] == "not_replayable"
