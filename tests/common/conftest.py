"""Fixtures of the plumbing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.common.db import Database
from services.common.migrate import upgrade_to_head
from tests.harness import Databases


@pytest.fixture
async def order_db(databases: Databases) -> AsyncIterator[Database]:
    """An order-service database at head, for consumers whose handlers write pings."""
    db = Database(await databases.new("order"))
    await upgrade_to_head(db, "order")
    yield db
    await db.dispose()
