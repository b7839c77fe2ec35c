"""Events the recall part consumes: `NoticeSent` fills a consignee's "notified: date, method"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.inbox import InboxConsumer, JetStreamWorker
from services.returns import recalls


async def on_notice_sent(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.NoticeSent)
    await recalls.notice_sent(session, event)


def workers(runtime: Runtime) -> Sequence[JetStreamWorker]:
    settings = runtime.settings
    return [
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service="returns",
            name="recall-notices",
            max_deliver=settings.consumer_max_deliver,
            backoff_seconds=settings.consumer_backoff_seconds,
            handlers={ev.NoticeSent: on_notice_sent},
        )
    ]
