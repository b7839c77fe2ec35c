"""The order lifecycle's transition table (`services/order/orders.py`)."""

from __future__ import annotations

from services.common.statuses import ORDER_FINAL, ORDER_OPEN, OrderStatus
from services.order.orders import TRANSITIONS


def test_every_status_has_a_row_and_final_ones_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert all(not TRANSITIONS[s] for s in ORDER_FINAL)


def test_every_open_order_may_be_cancelled_or_need_attention() -> None:
    for status in ORDER_OPEN:
        assert OrderStatus.CANCELLED in TRANSITIONS[status]
        if status is not OrderStatus.NEEDS_ATTENTION:
            assert OrderStatus.NEEDS_ATTENTION in TRANSITIONS[status]


def test_only_a_retry_leaves_needs_attention_other_than_cancelling() -> None:
    assert TRANSITIONS[OrderStatus.NEEDS_ATTENTION] == {OrderStatus.PLACED, OrderStatus.CANCELLED}
