"""Demo data and a guided run: orders placed, split, backordered, shipped, tracked, delivered.

`waybill up` seeds the demo data on a fresh system; `waybill demo` pushes orders through
the running system and prints every step of their timelines with its trace id. The
backordered order's stock arrives through replenishment: the filter papers' supplier is
signalled, acknowledges and ships a purchase order, and a coordinator receives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import nats

from cli.webhook_receiver import WebhookReceiver
from services.common.auth import Role, issue_token
from services.common.envelope import Envelope
from services.common.settings import SharedSettings
from services.common.statuses import SHIPMENT_FINAL
from services.supplier.signals import supplier_subject
from services.supplier.webhooks import verify_signature

WAREHOUSES: list[dict[str, Any]] = [
    {"id": "WH-NORTH", "name": "Hamburg distribution centre", "country": "DE"},
    {"id": "WH-SOUTH", "name": "Milan distribution centre", "country": "IT"},
]
SKUS: list[dict[str, Any]] = [
    {
        "code": "COFFEE-1KG",
        "gtin": "4006381333931",
        "name": "Espresso beans 1 kg",
        "unit_price": "18.50",
        "weight_grams": 1000,
        "shelf_life": True,
    },
    {
        "code": "MUG-CERAMIC",
        "gtin": "5901234123457",
        "name": "Ceramic mug",
        "unit_price": "6.90",
        "weight_grams": 350,
    },
    {
        "code": "GRINDER-BURR",
        "gtin": "4012345678901",
        "name": "Burr grinder",
        "unit_price": "129.00",
        "weight_grams": 2400,
    },
    {
        "code": "FILTER-PAPER",
        "gtin": "10012345678902",
        "name": "Filter papers, case of 12",
        "unit_price": "24.00",
        "weight_grams": 1200,
    },
]
# (warehouse, sku, lot, days to expiry or None, quantity)
RECEIPTS = [
    ("WH-NORTH", "COFFEE-1KG", "L-2601", 90, 40),
    ("WH-NORTH", "COFFEE-1KG", "L-2602", 180, 60),
    ("WH-SOUTH", "COFFEE-1KG", "L-2603", 60, 30),
    ("WH-NORTH", "MUG-CERAMIC", "M-0001", None, 100),
    ("WH-SOUTH", "GRINDER-BURR", "G-0001", None, 10),
]
# The filter papers' supplier: continuous review in WH-SOUTH, POs approved automatically
# up to 500 EUR, so a backorder there is signalled and ordered at once.
SUPPLIER: dict[str, Any] = {
    "id": "PAPERWORKS",
    "name": "Paperworks Filtration s.r.l.",
    "contacts": [{"name": "Giulia Conti", "email": "orders@paperworks.example"}],
}
SUPPLIER_ITEM: dict[str, Any] = {
    "sku": "FILTER-PAPER",
    "supplier_part_number": "PW-FP12",
    "unit_cost": "9.50",
    "currency": "EUR",
    "lead_time_days": 3,
    "moq": 10,
}
POLICY: tuple[str, str, dict[str, Any]] = (
    "FILTER-PAPER",
    "WH-SOUTH",
    {
        "review_mode": "continuous",
        "min_qty": 10,
        "max_qty": 20,
        "auto_approve_limit": "500",
        "ack_timeout_hours": 24,
    },
)
CUSTOMERS: list[dict[str, Any]] = [
    {
        "name": "Acme Logistics GmbH",
        "kind": "b2b",
        "email": "orders@acme.example",
        "phone": "+49 40 1234567",
        "credit_limit": "20000",
        "addresses": [
            {
                "kind": "shipping",
                "line1": "Hafenstrasse 1",
                "city": "Hamburg",
                "postal_code": "20457",
                "country": "DE",
            }
        ],
    },
    {
        "name": "Jane Doe",
        "kind": "b2c",
        "email": "jane@example.org",
        "phone": "+39 02 7654321",
        "addresses": [
            {
                "kind": "shipping",
                "line1": "Via Roma 10",
                "city": "Milano",
                "postal_code": "20121",
                "country": "IT",
            }
        ],
    },
    {
        "name": "Globex Retail",
        "kind": "b2b",
        "email": "buying@globex.example",
        "credit_limit": "100",
        "addresses": [
            {
                "kind": "shipping",
                "line1": "1 Market Street",
                "city": "Dublin",
                "postal_code": "D01",
                "country": "IE",
            }
        ],
    },
]


@dataclass
class Api:
    """Calls to the running services with one bearer token; `supplier_token` makes a
    supplier user's token (else supplier steps are a coordinator's, on its behalf) and
    `nats_url` lets the demo read a supplier's subject as the supplier does."""

    urls: dict[str, str]
    token: str
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))
    supplier_token: Callable[[str], str] | None = None
    nats_url: str | None = None

    @classmethod
    def from_settings(cls, settings: SharedSettings, role: Role = Role.COORDINATOR) -> Api:
        services = ("customer", "order", "shipment", "returns", "supplier")
        urls = {s: settings.service_url(s) for s in services}
        secret = settings.resolved_jwt_secret()
        token = issue_token(secret, role, subject="waybill-demo", issuer=settings.jwt_issuer)

        def supplier_token(supplier_id: str) -> str:
            return issue_token(
                secret,
                Role.SUPPLIER,
                subject=f"waybill-demo@{supplier_id}",
                supplier_id=supplier_id,
                issuer=settings.jwt_issuer,
            )

        return cls(urls, token, supplier_token=supplier_token, nats_url=settings.nats_url)

    def as_supplier(self, supplier_id: str) -> Api:
        """The same services as the supplier's own user (shares the HTTP client)."""
        if self.supplier_token is None:
            return self
        return Api(self.urls, self.supplier_token(supplier_id), self.http, nats_url=self.nats_url)

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        json: Any = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key:
            headers["Idempotency-Key"] = key
        r = await self.http.request(
            method, self.urls[service] + path, json=json, headers=headers, params=params
        )
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {service}{path} -> {r.status_code}: {r.text[:500]}")
        return r.json()

    async def close(self) -> None:
        await self.http.aclose()


async def seed(api: Api, today: date | None = None) -> dict[str, str]:
    """Create the demo warehouses, catalogue, stock and customers once; returns the
    customer ids by name. A system that already has warehouses is left alone."""
    today = today or date.today()
    existing = await api.call("order", "GET", "/warehouses")
    items = existing["items"] if isinstance(existing, dict) else existing
    customers: dict[str, str] = {}
    if not any(w["id"] == "WH-NORTH" for w in items):
        for wh in WAREHOUSES:
            await api.call("order", "POST", "/warehouses", wh, key=f"seed-{wh['id']}")
        for sku in SKUS:
            await api.call("order", "POST", "/catalogue/skus", sku, key=f"seed-{sku['code']}")
        for wh_id, sku_code, lot, days, qty in RECEIPTS:
            await api.call(
                "order",
                "POST",
                "/stock/receipts",
                {
                    "warehouse_id": wh_id,
                    "sku": sku_code,
                    "lot": lot,
                    "quantity": qty,
                    "expiry": (today + timedelta(days=days)).isoformat() if days else None,
                    "reference": "demo seed",
                },
                key=f"seed-{wh_id}-{lot}",
            )
        for c in CUSTOMERS:
            body = await api.call("customer", "POST", "/customers", c, key=f"seed-{c['name']}")
            customers[c["name"]] = body["id"]
    else:
        for c in CUSTOMERS:
            page = await api.call("customer", "GET", "/customers", params={"q": c["name"]})
            match = [x for x in page["items"] if x["name"] == c["name"]]
            if match:
                customers[c["name"]] = match[0]["id"]
    await seed_supplier(api)
    return customers


async def seed_supplier(api: Api) -> None:
    """The filter papers' supplier, its item and the WH-SOUTH policy (each step repeat-safe:
    a system seeded before suppliers existed gets them on the next seed)."""
    sid = SUPPLIER["id"]
    found = await api.call("supplier", "GET", f"/suppliers/{sid}", ok=(200, 404))
    if found.get("id") != sid:
        await api.call("supplier", "POST", "/suppliers", SUPPLIER, key=f"seed-supplier-{sid}")
    items = await api.call("supplier", "GET", f"/suppliers/{sid}/items")
    if not any(i["sku"] == SUPPLIER_ITEM["sku"] for i in items["items"]):
        await api.call(
            "supplier", "POST", f"/suppliers/{sid}/items", SUPPLIER_ITEM, key=f"seed-item-{sid}"
        )
    sku, warehouse_id, policy = POLICY
    await api.call("supplier", "PUT", f"/replenishment-policies/{sku}/{warehouse_id}", policy)


def ship_to(customer: dict[str, Any]) -> dict[str, Any]:
    address = customer["addresses"][0]
    return {
        "name": customer["name"],
        "line1": address["line1"],
        "city": address["city"],
        "postal_code": address["postal_code"],
        "country": address["country"],
    }


async def place(
    api: Api, customer_id: str, address: dict[str, Any], lines: list[tuple[str, int]]
) -> dict[str, Any]:
    order: dict[str, Any] = await api.call(
        "order",
        "POST",
        "/orders",
        {
            "customer_id": customer_id,
            "ship_to": address,
            "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        },
        key=str(uuid.uuid4()),
    )
    return order


async def follow(
    api: Api,
    order_id: str,
    label: str,
    out: Callable[[str], None],
    wait_seconds: float = 120,
    until: tuple[str, ...] = ("completed", "cancelled"),
    shown: int = 0,
) -> dict[str, Any]:
    """Print the order's timeline as it grows (after the first `shown` entries), until
    it reaches one of `until`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        status: dict[str, Any] = await api.call("order", "GET", f"/orders/{order_id}/status")
        for entry in status["timeline"][shown:]:
            trace = (entry.get("trace_id") or "")[:12]
            out(f"  [{label}] {entry['kind']:<22} {entry['detail']}  trace={trace}")
        shown = len(status["timeline"])
        if status["status"] in until and status["status"] != "completed":
            return status
        if status["status"] == "completed":
            live = await api.call(
                "order", "GET", f"/orders/{order_id}/status", params={"live": "true"}
            )
            if _settled(live):
                return live
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {order_id} still {status['status']} after {wait_seconds}s")
        await asyncio.sleep(0.3)


def _settled(status: dict[str, Any]) -> bool:
    """Shipments and their tracking reach the order's read model through its own
    consumer, possibly after the workflow (told by the bridge) completed the order; wait
    until the model holds every shipment the workflow made, so the printed story is whole."""
    shipments = status["shipments"]
    made = len((status.get("workflow") or {}).get("shipments") or shipments)
    return len(shipments) == made > 0 and all(
        s["status"] in SHIPMENT_FINAL and s["events"] for s in shipments
    )


async def run_demo(api: Api, out: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Three orders: one from one warehouse, one split across two, one backordered and
    then filled by the supplier's replenishment (signal, PO, ASN, receipt); then a return
    of a delivered line to refund and restock, and a recall of the mug lot both customers
    received. Returns the orders' final `/status` answers."""
    customers = await seed(api)
    acme, jane = customers["Acme Logistics GmbH"], customers["Jane Doe"]
    acme_c = await api.call("customer", "GET", f"/customers/{acme}")
    jane_c = await api.call("customer", "GET", f"/customers/{jane}")
    one = await place(api, acme, ship_to(acme_c), [("COFFEE-1KG", 2), ("MUG-CERAMIC", 1)])
    split = await place(api, jane, ship_to(jane_c), [("MUG-CERAMIC", 1), ("GRINDER-BURR", 1)])
    async with supplier_webhook(api, SUPPLIER["id"]) as hook:
        back = await place(api, acme, ship_to(acme_c), [("FILTER-PAPER", 5)])
        out(f"placed {one['id']} (one warehouse), {split['id']} (split), {back['id']} (backorder)")
        results = await asyncio.gather(
            follow(api, one["id"], "one", out),
            follow(api, split["id"], "split", out),
            _backorder_then_replenish(api, back["id"], hook, out),
        )
    for result in results:
        shipments = ", ".join(
            f"{s['warehouse_id']}:{s['tracking_number']}={s['status']}" for s in result["shipments"]
        )
        out(f"{result['order_id']}: {result['status']} ({result['outcome']}) {shipments}")
    picked = delivered_line([(split, jane, results[1]), (one, acme, results[0])])
    if picked is None:
        out("[return] skipped: the carrier sent every parcel back, nothing was delivered")
    else:
        await return_to_refund(api, *picked, out)
    await recall_lot(api, "MUG-CERAMIC", out)
    return list(results)


def delivered_line(
    candidates: Sequence[tuple[dict[str, Any], str, dict[str, Any]]],
) -> tuple[dict[str, Any], str, int, str] | None:
    """(order, customer id, line number, SKU) of a line whose shipment was delivered,
    the grinder first: the simulated carrier sends a few parcels back to the sender, and
    only delivered goods can be returned."""
    found: list[tuple[dict[str, Any], str, int, str]] = []
    for order, customer_id, status in candidates:
        for shipment in status["shipments"]:
            if shipment["status"] == "delivered":
                found.extend(
                    (order, customer_id, int(lot["line_no"]), str(lot["sku"]))
                    for lot in shipment["lots"]
                )
    found.sort(key=lambda x: x[3] != "GRINDER-BURR")
    return found[0] if found else None


async def _until(
    what: str, check: Callable[[], Any], wait_seconds: float = 120, every: float = 0.3
) -> Any:
    """Poll `check` (a coroutine function) until it answers something true."""
    deadline = time.monotonic() + wait_seconds
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still waiting after {wait_seconds}s")
        await asyncio.sleep(every)


async def return_to_refund(
    api: Api,
    order: dict[str, Any],
    customer_id: str,
    line_no: int,
    sku: str,
    out: Callable[[str], None],
) -> dict[str, Any]:
    """A coordinator takes one unit of a delivered line back: requested on the
    customer's behalf, authorized by policy, a return label, the parcel scanned back to
    the warehouse, received, inspected (restock), refunded less the restocking fee,
    closed; the unit is back on the shelf in its own lot."""
    before = await api.call("order", "GET", "/stock/availability", params={"sku": sku})
    ret = await api.call(
        "returns",
        "POST",
        "/returns",
        {
            "order_id": order["id"],
            "customer_id": customer_id,
            "reason": "no_longer_needed",
            "requested_resolution": "refund",
            "lines": [{"line_no": line_no, "quantity": 1}],
        },
        key=f"demo-return-{order['id']}",
    )
    rid = ret["id"]
    out(f"return {rid}: requested for 1 x {sku} of {order['id']}")

    async def get() -> dict[str, Any]:
        body: dict[str, Any] = await api.call("returns", "GET", f"/returns/{rid}")
        return body

    labelled = await _until(
        "the return label", lambda: _when(get, lambda r: r["tracking_number"] is not None)
    )
    out(
        f"  [return] authorized by policy; label {labelled['carrier']}:"
        f"{labelled['tracking_number']} back to {labelled['warehouse_id']}"
    )
    arrived = await _until(
        "the parcel back at the warehouse", lambda: _when(get, lambda r: r["arrived_at"])
    )
    out(f"  [return] parcel delivered to {arrived['warehouse_id']} at {arrived['arrived_at']}")
    lots = [
        {"line_no": x["line_no"], "lot": x["lot"], "good": x["expected"], "damaged": 0}
        for x in arrived["lots"]
    ]
    await api.call("returns", "POST", f"/returns/{rid}/receipt", {"lots": lots})
    counted = ", ".join(f"{x['good']} good of lot {x['lot']}" for x in lots)
    out(f"  [return] received: {counted}")
    await _until("the return received", lambda: _when(get, lambda r: r["status"] == "received"))
    await api.call(
        "returns",
        "POST",
        f"/returns/{rid}/inspection",
        {
            "lots": [
                {"line_no": x["line_no"], "lot": x["lot"], "disposition": "restock"} for x in lots
            ]
        },
    )
    out("  [return] inspected: restock")
    closed = await _until(
        "the return closed", lambda: _when(get, lambda r: r["status"] == "closed")
    )
    out(
        f"  [return] {closed['resolution']}: {closed['refund_total']} {closed['currency']} "
        f"(restocking fee {closed['restocking_fee']}); closed"
    )

    async def restocked() -> dict[str, Any] | None:
        now = await api.call("order", "GET", "/stock/availability", params={"sku": sku})
        return now if _on_hand(now) > _on_hand(before) else None

    await _until(f"{sku} back in stock", restocked)
    out(f"  [return] {sku} back on the shelf in its original lot")
    return closed


def _on_hand(availability: Any) -> int:
    rows = availability["items"] if isinstance(availability, dict) else availability
    return sum(int(r.get("on_hand", 0)) for r in rows)


async def _when(
    get: Callable[[], Any], test: Callable[[dict[str, Any]], Any]
) -> dict[str, Any] | None:
    body: dict[str, Any] = await get()
    return body if test(body) else None


async def recall_lot(api: Api, sku: str, out: Callable[[str], None]) -> dict[str, Any]:
    """A coordinator recalls the lot every demo mug came from: stock quarantined, every
    customer who received it traced and noticed (mails in `waybill mail list`), one
    consignee answers, and the status report says how far it has got."""
    trace = await api.call("order", "GET", "/traceability/lots/M-0001", params={"sku": sku})
    customers = trace["forward"]["customers"]
    recall = await api.call(
        "returns",
        "POST",
        "/recalls",
        {
            "sku": sku,
            "lots": ["M-0001"],
            "reason": "glaze may release lead",
            "instructions": "Stop using the mug; send it back with the prepaid label.",
            "hazard_class": "II",
            "depth": "A",
        },
        key=f"demo-recall-{uuid.uuid4()}",
    )
    rid = recall["id"]
    out(f"recall {rid}: {sku} lot M-0001, shipped to {customers} customers")

    async def fanned_out() -> dict[str, Any] | None:
        body: dict[str, Any] = await api.call("returns", "GET", f"/recalls/{rid}")
        return body if body["fanned_out_at"] else None

    await _until("the recall's fan-out", fanned_out)
    page = await api.call("returns", "GET", f"/recalls/{rid}/consignees")
    for c in page["items"]:
        out(
            f"  [recall] consignee {c['customer_id']} order {c['order_id']}: "
            f"{c['quantity_shipped']} shipped, recall return {c['return_id']}"
        )
    if not page["items"]:  # every mug parcel went back to the warehouse
        out("  [recall] no consignee: no customer kept goods of the lot")
        report: dict[str, Any] = await api.call("returns", "GET", f"/recalls/{rid}/report")
        return report
    first = page["items"][0]
    await api.call(
        "returns",
        "POST",
        f"/recalls/{rid}/consignees/{first['customer_id']}/response",
        {
            "action": "destroyed",
            "quantity_on_hand": first["quantity_shipped"],
            "order_id": first["order_id"],
        },
    )
    out(f"  [recall] {first['customer_id']} answers: destroyed")

    async def noticed() -> dict[str, Any] | None:
        body: dict[str, Any] = await api.call("returns", "GET", f"/recalls/{rid}/report")
        return body if body["notified"] >= body["consignees"] and body["responded"] else None

    report = await _until("every consignee notified", noticed)
    q = report["quantities"]
    out(
        f"  [recall] report: {report['notified']}/{report['consignees']} notified "
        f"{report['notified_by_method']}, {report['responded']} responded; shipped "
        f"{q['shipped']}, returned {q['returned']}, destroyed {q['corrected_or_destroyed']}, "
        f"outstanding {q['outstanding']}; effectiveness {report['effectiveness']}%"
    )
    return report


@dataclass
class SupplierHook:
    """The supplier's webhook for the demo's run: where it listens and its secret."""

    receiver: WebhookReceiver
    secret: str


@asynccontextmanager
async def supplier_webhook(api: Api, supplier_id: str) -> AsyncIterator[SupplierHook]:
    """Play the supplier's end of the webhook for the demo's run: a local receiver becomes
    the supplier's URL with a fresh secret, and the URL is cleared again afterwards."""
    receiver = await WebhookReceiver().start()
    try:
        await api.call(
            "supplier", "PATCH", f"/suppliers/{supplier_id}", {"webhook_url": receiver.url}
        )
        rotated = await api.call("supplier", "POST", f"/suppliers/{supplier_id}/webhook-secret")
        yield SupplierHook(receiver, rotated["webhook_secret"])
    finally:
        with contextlib.suppress(Exception):
            await api.call("supplier", "PATCH", f"/suppliers/{supplier_id}", {"webhook_url": None})
        await receiver.stop()


async def _webhook_seen(hook: SupplierHook, signal_id: str) -> str:
    """The delivery of the signal at the supplier's webhook, its signature checked."""

    async def delivered() -> str | None:
        for request in hook.receiver.requests:
            envelope = json.loads(request.body)
            if envelope.get("data", {}).get("signal_id") == signal_id:
                header = request.headers.get("waybill-signature", "")
                ok = verify_signature(hook.secret, header, request.body, time.time())
                return f"POST {request.path}, signature {'verified' if ok else 'WRONG'}"
        return None

    found: str = await _until("the signal at the supplier's webhook", delivered)
    return found


async def _backorder_then_replenish(
    api: Api, order_id: str, hook: SupplierHook, out: Callable[[str], None]
) -> dict[str, Any]:
    """The backordered order waits; its stock comes from the supplier (`replenish`);
    then it moves on to delivery, and the supplier's scorecard counts the PO."""
    waiting = await follow(api, order_id, "backorder", out, until=("backordered",))
    if waiting["status"] != "backordered":
        out("  [replenish] skipped: the filter papers were in stock")
        return waiting
    sku, warehouse_id, _ = POLICY
    await replenish(api, sku, warehouse_id, hook, out)
    done = await follow(api, order_id, "backorder", out, shown=len(waiting["timeline"]))
    card = await api.call("supplier", "GET", f"/suppliers/{SUPPLIER['id']}/scorecard")
    out(
        f"  [replenish] {SUPPLIER['id']} scorecard: {card['pos_closed']} PO closed, "
        f"{card['pos_open']} open; fill rate {_pct(card['fill_rate'])}, on time "
        f"{_pct(card['on_time_rate'])}, acknowledged after {_hours(card['mean_ack_hours'])} "
        "on average"
    )
    return done


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 3600:.0f} s"


async def replenish(
    api: Api, sku: str, warehouse_id: str, hook: SupplierHook, out: Callable[[str], None]
) -> dict[str, Any]:
    """The backorder drew the pair's position below its reorder point: the supplier
    service raised a signal and, within the auto-approve limit, a PO. The supplier sees
    the signal on its subject, reads its stock view, acknowledges and sends the ASN; a
    coordinator receives the goods, which fill the backorder; the PO's workflow closes it."""
    sid = SUPPLIER["id"]

    async def waiting_po() -> dict[str, Any] | None:
        page = await api.call(
            "supplier",
            "GET",
            "/purchase-orders",
            params={"sku": sku, "warehouse_id": warehouse_id, "supplier_id": sid},
        )
        live = [p for p in page["items"] if p["status"] in ("pending_approval", "approved")]
        return live[0] if live else None

    po = await _until("the purchase order", waiting_po)
    signal = await _signal_as_seen(api, sid, po["signal_id"])
    out(
        f"  [replenish] {signal['subject']} {signal['type']}: {sku}@{warehouse_id} position "
        f"{signal['position']} (backordered {signal['backordered']}) below reorder point "
        f"{signal['reorder_point']}: {signal['quantity']} by {signal['need_by']}"
    )
    out(f"  [replenish] {sid}'s webhook got it: {await _webhook_seen(hook, po['signal_id'])}")
    if po["status"] == "pending_approval":
        po = await api.call("supplier", "POST", f"/purchase-orders/{po['id']}/approve")
        out(f"  [replenish] PO {po['id']} approved by a coordinator")
    else:
        out(
            f"  [replenish] PO {po['id']}: {po['quantity']} x {po['unit_cost']} {po['currency']}"
            " approved automatically (within the policy's limit)"
        )
    supplier = api.as_supplier(sid)
    view = await supplier.call("supplier", "GET", f"/suppliers/{sid}/inventory")
    for row in view["items"]:
        if (row["sku"], row["warehouse_id"]) == (sku, warehouse_id):
            out(
                f"  [replenish] {sid} reads its stock view: on hand {row['on_hand']}, "
                f"backordered {row['backordered']}, on order {row['on_order']}, "
                f"position {row['position']}"
            )
    promised = date.today() + timedelta(days=2)
    acked = await supplier.call(
        "supplier",
        "POST",
        f"/purchase-orders/{po['id']}/acknowledge",
        {"quantity": po["quantity"], "promised_date": promised.isoformat()},
    )
    out(f"  [replenish] {sid} acknowledges {acked['quantity_acknowledged']} for {promised}")
    lot = f"PW-{uuid.uuid4().hex[:6].upper()}"
    expected = datetime.now(UTC) + timedelta(days=1)
    await supplier.call(
        "supplier",
        "POST",
        f"/purchase-orders/{po['id']}/asn",
        {
            "lots": [{"lot": lot, "quantity": po["quantity"]}],
            "expected_at": expected.isoformat(timespec="seconds"),
        },
        key=f"demo-asn-{po['id']}",
    )
    out(f"  [replenish] {sid} ships lot {lot} (ASN), expected {expected:%Y-%m-%d}")
    await api.call(
        "supplier",
        "POST",
        f"/purchase-orders/{po['id']}/receipts",
        {"lots": [{"lot": lot, "quantity": po["quantity"]}], "complete": True},
        key=f"demo-receipt-{po['id']}",
    )
    out(f"  [replenish] received {po['quantity']} x {sku} of lot {lot} into {warehouse_id}")

    async def closed() -> dict[str, Any] | None:
        body: dict[str, Any] = await api.call("supplier", "GET", f"/purchase-orders/{po['id']}")
        return body if body["status"] == "closed" else None

    final: dict[str, Any] = await _until("the PO closed", closed)
    out(
        f"  [replenish] PO {po['id']} closed by its workflow: received "
        f"{final['quantity_received']} of {final['quantity']}, shortfall {final['shortfall']}"
    )
    return final


async def _signal_as_seen(api: Api, supplier_id: str, signal_id: str) -> dict[str, Any]:
    """The signal's envelope as the supplier reads it from `supplier.<id>.signals` (a
    JetStream consumer of its own), or from the API when the demo has no NATS URL."""
    subject = supplier_subject(supplier_id)
    if api.nats_url is None:
        body: dict[str, Any] = await api.call("supplier", "GET", f"/signals/{signal_id}")
        return {**body, "subject": "GET /signals/{id}", "type": "signal"}
    nc = await nats.connect(api.nats_url)
    try:
        sub = await nc.jetstream().subscribe(subject, ordered_consumer=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            envelope = Envelope.model_validate_json((await sub.next_msg(timeout=30)).data)
            if envelope.data.get("signal_id") == signal_id:
                return {**envelope.data, "subject": subject, "type": envelope.type}
    finally:
        await nc.close()
    raise TimeoutError(f"signal {signal_id} not on {subject}")
