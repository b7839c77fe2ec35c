"""The names workflows are reached by, shared by the workflows, the bridge and the
services' gateways, so the two sides of a call can never disagree on a string."""

from __future__ import annotations


class OrderWorkflow:
    """Order to delivery (`workflows/order/workflow.py`)."""

    NAME = "OrderToDelivery"
    SIGNAL_CREDIT_RELEASED = "credit_released"
    SIGNAL_BACKORDER_FILLED = "backorder_filled"
    SIGNAL_SHIPMENT_STATUS = "shipment_status"
    SIGNAL_RETRY = "retry"
    UPDATE_CANCEL = "cancel"
    QUERY_STATUS = "status"

    @staticmethod
    def id(order_id: str) -> str:
        return f"order-{order_id}"

    @staticmethod
    def exception_task_key(shipment_id: str) -> str:
        """The de-duplication key of the one task a shipment's carrier exception opens."""
        return f"exception:{shipment_id}"


class PingWorkflow:
    """The diagnostics round trip (`workflows/ping/workflow.py`)."""

    NAME = "Ping"

    @staticmethod
    def id(ping_id: str) -> str:
        return f"ping-{ping_id}"


class ReturnWorkflow:
    """A return (RMA) from request to closed (`workflows/returns/workflow.py`)."""

    NAME = "Return"
    SIGNAL_CHANGED = "changed"  # the return changed at the returns service: read it again
    SIGNAL_RETURN_SHIPMENT = "return_shipment"  # the return parcel's status after a scan
    QUERY_STATUS = "status"

    @staticmethod
    def id(return_id: str) -> str:
        return f"return-{return_id}"


class RecallWorkflow:
    """A recall campaign (`workflows/recall/workflow.py`)."""

    NAME = "Recall"
    SIGNAL_CLOSED = "closed"
    SIGNAL_RESPONDED = "responded"
    QUERY_STATUS = "status"

    @staticmethod
    def id(recall_id: str) -> str:
        return f"recall-{recall_id}"


class PurchaseOrderWorkflow:
    """A purchase order from creation to closed or cancelled (`workflows/purchase/`)."""

    NAME = "PurchaseOrder"
    SIGNAL_CHANGED = "changed"  # the PO changed at the supplier service: read it again
    QUERY_STATUS = "status"

    @staticmethod
    def id(po_id: str) -> str:
        return f"po-{po_id}"


class ReplenishmentReviewWorkflow:
    """The periodic replenishment review (`workflows/replenishment/`), started by the
    Temporal schedule `SCHEDULE_ID` the worker keeps in step with its settings."""

    NAME = "ReplenishmentReview"
    SCHEDULE_ID = "replenishment-review"
    # Each scheduled run's id is this plus the scheduled time (Temporal appends it).
    WORKFLOW_ID = "replenishment-review"
