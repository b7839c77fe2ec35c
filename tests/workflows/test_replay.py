"""Recorded workflow histories (orders, recalls, purchase orders) still replay against
the current workflow code.

A workflow that is running when a new version of the worker is deployed continues on
the new code by replaying its history. A change that makes that replay take another
path (a new activity, a reordered step) fails here, and must go behind
`workflow.patched(...)`. The histories are real runs of the e2e scenarios, recorded with
`WAYBILL_RECORD_HISTORIES=1 ./waybill test tests/e2e/test_order_to_delivery.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from services.common.temporal import interceptors
from workflows.order.workflow import OrderToDelivery
from workflows.purchase.workflow import PurchaseOrderRun
from workflows.recall.workflow import Recall

HISTORIES = {
    path.stem: path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("order_*.json"))
}


def test_the_scenarios_are_recorded() -> None:
    names = set(HISTORIES)
    assert {
        "order_happy_path",
        "order_split",
        "order_backorder",
        "order_credit_hold",
        "order_cancel_refused",
        # recorded on the code of issue 6 (revisions, attention, compensation)
        "order_hostile_scans",
        "order_backordered_at_pick",
        "order_attention_retry",
        "order_attention_cancel",
        "order_shipment_cancelled_retry",
        "order_shipment_expired",
    } <= names


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(name, HISTORIES[name])
    replayer = Replayer(
        workflows=[OrderToDelivery],
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


RECALL_HISTORIES = {
    path.stem: path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("recall_*.json"))
}


def test_the_recall_scenarios_are_recorded() -> None:
    assert {"recall_closed_by_target", "recall_closed_by_coordinator"} <= set(RECALL_HISTORIES)


@pytest.mark.parametrize("name", sorted(RECALL_HISTORIES))
async def test_recall_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(name, RECALL_HISTORIES[name])
    replayer = Replayer(
        workflows=[Recall], data_converter=pydantic_data_converter, interceptors=interceptors()
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


PO_HISTORIES = {
    path.stem: path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("po_*.json"))
}


def test_the_purchase_order_scenarios_are_recorded() -> None:
    assert {"po_acknowledged_shipped_received"} <= set(PO_HISTORIES)


@pytest.mark.parametrize("name", sorted(PO_HISTORIES))
async def test_purchase_order_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(name, PO_HISTORIES[name])
    replayer = Replayer(
        workflows=[PurchaseOrderRun],
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
