"""Dead letters: list, show, replay and discard what the consumers gave up on.

A dead letter is one message on the `DEADLETTER` stream (its id is the stream
sequence), published by `JetStreamWorker` with the original body and the `Waybill-*`
headers saying what failed, or by the outbox relay for a row it parked (body: a
summary; the row stays in the service's `outbox` table). What ops did with one is kept
beside it in the `deadletters` key-value bucket: `replayed` (by, when, as which stream
message) or `discarded` (by, when, why).

Replay republishes the original body to its original subject, with the original
CloudEvents id inside, so every inbox still de-duplicates, and addressed to the consumer
that gave up on it (header `Waybill-Replay-For`): every other consumer of the subject
acks it unread, so a replay never reaches a consumer that did not ask for it (one that
also failed has its own dead letter to replay). Its `Nats-Msg-Id` is
`<event id>:replay:<dead letter id>`, not the event id, so the stream accepts it even
inside its duplicate window; a second replay of the same dead letter within the window
is dropped by the stream, and outside it refused here (the dead letter is no longer
open). `waybill deadletters` and `/ops/deadletters` both call this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from nats.js.api import KeyValueConfig, RawStreamMsg, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from services.common.bus import RETENTION_SECONDS, Bus
from services.common.envelope import Envelope
from services.common.events import DEADLETTER_STREAM
from services.common.inbox import DLH
from services.common.problems import Conflict, NotFound

BUCKET = "deadletters"
MAX_ID = 2**63 - 1  # stream sequences are unsigned 64-bit; NATS refuses larger ones

State = Literal["open", "replayed", "discarded"]


@dataclass
class DeadLetter:
    """One dead letter as ops see it."""

    id: int
    subject: str
    consumer: str
    error: str
    failure: str
    attempts: int
    first_failure: datetime
    last_failure: datetime
    event_id: str | None
    event_type: str | None
    state: State = "open"
    handled_by: str | None = None
    handled_at: datetime | None = None
    reason: str | None = None
    replayed_as: int | None = None
    outbox_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("first_failure", "last_failure", "handled_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcards: `*` one token, `>` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


class DeadLetters:
    """The dead-letter stream and what ops did with each entry."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._kv: KeyValue | None = None

    async def _state(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self.bus.js.key_value(BUCKET)
            except BucketNotFoundError:
                self._kv = await self.bus.js.create_key_value(
                    KeyValueConfig(bucket=BUCKET, ttl=RETENTION_SECONDS, storage=StorageType.FILE)
                )
        return self._kv

    async def find(
        self, *, subject: str | None = None, all_states: bool = False
    ) -> list[DeadLetter]:
        """Open dead letters (every one with `all_states`), oldest first; `subject` filters
        on the original subject (wildcards allowed)."""
        try:
            info = await self.bus.js.stream_info(DEADLETTER_STREAM)
        except NotFoundError:
            return []
        found: list[DeadLetter] = []
        if not info.state.messages:
            return found
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                raw = await self.bus.js.get_msg(DEADLETTER_STREAM, seq)
            except NotFoundError:
                continue
            letter = await self._decorate(_letter(raw))
            if subject and not subject_matches(subject, letter.subject):
                continue
            if all_states or letter.state == "open":
                found.append(letter)
        return found

    async def get(self, letter_id: int) -> tuple[DeadLetter, RawStreamMsg]:
        """The dead letter and its stored message; 404 problem when there is none."""
        if not 1 <= letter_id <= MAX_ID:
            raise NotFound(f"no dead letter {letter_id}")
        try:
            raw = await self.bus.js.get_msg(DEADLETTER_STREAM, letter_id)
        except NotFoundError:
            raise NotFound(f"no dead letter {letter_id}") from None
        return await self._decorate(_letter(raw)), raw

    async def show(self, letter_id: int) -> dict[str, Any]:
        """The dead letter with its body (parsed when it is an envelope) and headers."""
        letter, raw = await self.get(letter_id)
        body: Any
        try:
            body = json.loads(raw.data or b"")
        except ValueError:
            body = (raw.data or b"").decode(errors="replace")
        return {**letter.as_dict(), "headers": dict(raw.headers or {}), "body": body}

    async def replay(self, letter_id: int, by: str) -> DeadLetter:
        """Publish the original message again and mark the dead letter replayed."""
        letter, raw = await self.get(letter_id)
        _ensure_open(letter)
        if letter.outbox_seq is not None:
            raise Conflict(
                f"dead letter {letter_id} is a parked outbox row (seq {letter.outbox_seq}) of "
                f"{letter.consumer}: its event never reached the stream; discard it once handled",
                code="not_replayable",
            )
        headers = {
            k: v
            for k, v in (raw.headers or {}).items()
            if not k.startswith("Waybill-") and k != "Nats-Msg-Id"
        }
        if letter.consumer:
            headers[DLH.REPLAY_FOR] = letter.consumer
        msg_id = f"{letter.event_id or 'raw'}:replay:{letter.id}"
        ack = await self.bus.publish(letter.subject, raw.data or b"", msg_id, headers=headers)
        return await self._mark(letter, "replayed", by, replayed_as=ack.seq)

    async def replay_all(self, subject: str, by: str) -> list[DeadLetter]:
        """Replay every open dead letter whose original subject matches `subject`."""
        letters = await self.find(subject=subject)
        return [await self.replay(letter.id, by) for letter in letters if letter.outbox_seq is None]

    async def discard(self, letter_id: int, by: str, reason: str) -> DeadLetter:
        """Mark the dead letter handled without replaying it, saying who and why."""
        if not reason.strip():
            raise Conflict("say why the dead letter is discarded", code="reason_required")
        letter, _ = await self.get(letter_id)
        _ensure_open(letter)
        return await self._mark(letter, "discarded", by, reason=reason)

    async def _mark(
        self,
        letter: DeadLetter,
        state: State,
        by: str,
        *,
        reason: str | None = None,
        replayed_as: int | None = None,
    ) -> DeadLetter:
        letter.state, letter.handled_by, letter.handled_at = state, by, datetime.now(UTC)
        letter.reason, letter.replayed_as = reason, replayed_as
        record = {
            "state": state,
            "by": by,
            "at": letter.handled_at.isoformat(),
            "reason": reason,
            "replayed_as": replayed_as,
        }
        await (await self._state()).put(str(letter.id), json.dumps(record).encode())
        return letter

    async def _decorate(self, letter: DeadLetter) -> DeadLetter:
        try:
            entry = await (await self._state()).get(str(letter.id))
        except KeyNotFoundError:
            return letter
        record = json.loads(entry.value or b"{}")
        letter.state = record["state"]
        letter.handled_by = record.get("by")
        letter.handled_at = datetime.fromisoformat(record["at"]) if record.get("at") else None
        letter.reason = record.get("reason")
        letter.replayed_as = record.get("replayed_as")
        return letter


def _ensure_open(letter: DeadLetter) -> None:
    if letter.state != "open":
        raise Conflict(
            f"dead letter {letter.id} was {letter.state} by {letter.handled_by}",
            code=f"already_{letter.state}",
        )


def _letter(raw: RawStreamMsg) -> DeadLetter:
    headers: dict[str, str] = dict(raw.headers or {})
    last = raw.time or datetime.now(UTC)
    try:
        envelope: Envelope | None = Envelope.model_validate_json(raw.data or b"")
    except ValueError:
        envelope = None
    first = headers.get(DLH.FIRST_FAILURE)
    outbox_seq = headers.get(DLH.OUTBOX_SEQ)
    return DeadLetter(
        id=int(raw.seq or 0),
        subject=headers.get(DLH.SUBJECT, ""),
        consumer=headers.get(DLH.CONSUMER, ""),
        error=headers.get(DLH.ERROR, ""),
        failure=headers.get(DLH.FAILURE, ""),
        attempts=int(headers.get(DLH.DELIVERIES, "0") or 0),
        first_failure=datetime.fromisoformat(first) if first else last,
        last_failure=last,
        event_id=envelope.id if envelope else headers.get(DLH.EVENT_ID),
        event_type=envelope.type if envelope else None,
        outbox_seq=int(outbox_seq) if outbox_seq else None,
    )
