"""Customers over HTTP: create, read, update, list; idempotency, validation, access."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest

from services.common.bus import Bus
from tests.customer.conftest import body, create, stream_events
from tests.harness import RunningService, Stack, auth, eventually

PROBLEM = "application/problem+json"

FULL = body(
    "Müller Spedition GmbH",
    email="  Dispatch@Mueller-Spedition.DE ",
    phone="+49 (30) 1234-5678",
    addresses=[
        {
            "kind": "shipping",
            "line1": "Hafenstraße 1",
            "city": "Hamburg",
            "postal_code": "20457",
            "country": "de",
        },
        {
            "kind": "shipping",
            "line1": "Lager 7",
            "line2": "",
            "city": "Bremen",
            "country": "DE",
            "is_default": True,
        },
        {"kind": "billing", "line1": "Postfach 12", "city": "Berlin", "country": "DE"},
    ],
    contacts=[
        {"name": "Anna Weber", "email": "anna@mueller-spedition.de", "role": "purchasing"},
        {"name": "Jonas Koch", "phone": "030 / 98 76 54"},
    ],
    credit_limit="25000",
)


async def test_create_then_read_normalises_and_stores_everything(
    customer_svc: RunningService,
) -> None:
    created = await create(customer_svc, FULL)
    assert created["name"] == "Müller Spedition GmbH"
    assert created["email"] == "dispatch@mueller-spedition.de"
    assert created["phone"] == "+493012345678"
    assert created["credit_limit"] == "25000.00"
    assert created["credit_hold"] is False
    assert created["version"] == 1
    shipping = [a for a in created["addresses"] if a["kind"] == "shipping"]
    # Explicit default kept; the lone billing address becomes the default.
    assert [(a["city"], a["is_default"]) for a in shipping] == [
        ("Hamburg", False),
        ("Bremen", True),
    ]
    billing = next(a for a in created["addresses"] if a["kind"] == "billing")
    assert billing["is_default"] is True
    assert [a["country"] for a in created["addresses"]] == ["DE", "DE", "DE"]
    assert shipping[1]["line2"] is None
    assert [(c["name"], c["phone"], c["role"]) for c in created["contacts"]] == [
        ("Anna Weber", None, "purchasing"),
        ("Jonas Koch", "030987654", None),
    ]

    r = await customer_svc.http.get(f"/customers/{created['id']}", headers=auth("ops"))
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == '"1"'


async def test_create_emits_customer_created(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    created = await create(svc, body("Acme Logistics", credit_limit="1000.5"))
    events = await eventually(
        lambda: stream_events(bus, "CUSTOMER", "customer.customer.created"),
        message="CustomerCreated on the stream",
    )
    assert len(events) == 1
    assert events[0].subject == created["id"]
    assert events[0].data == {
        "customer_id": created["id"],
        "name": "Acme Logistics",
        "kind": "b2b",
        "credit_limit": "1000.50",
        "credit_hold": False,
    }


async def test_idempotent_create(customer_svc: RunningService) -> None:
    """Replay answers the first response; another body is 422; no key is 400."""
    headers = {**auth("coordinator", subject="carol"), "Idempotency-Key": "create-1"}
    first = await customer_svc.http.post("/customers", json=body(), headers=headers)
    again = await customer_svc.http.post("/customers", json=body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"

    other = await customer_svc.http.post("/customers", json=body("Other Ltd"), headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"

    missing = await customer_svc.http.post(
        "/customers", json=body(), headers=auth("coordinator", subject="carol")
    )
    assert missing.status_code == 400
    assert missing.json()["code"] == "idempotency_key_missing"

    listed = await customer_svc.http.get("/customers", headers=auth("ops"))
    assert [c["id"] for c in listed.json()["items"]] == [first.json()["id"]]


async def test_concurrent_creates_with_one_key_make_one_customer(
    customer_svc: RunningService,
) -> None:
    headers = {**auth("service", subject="order-workflows"), "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(customer_svc.http.post("/customers", json=body(), headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    listed = await customer_svc.http.get("/customers", headers=auth("ops"))
    assert len(listed.json()["items"]) == 1


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        (body(email="not-an-email"), ["body", "email"]),
        (body(email="a@b"), ["body", "email"]),
        (body(email="two@@example.com"), ["body", "email"]),
        (
            body(addresses=[{"kind": "billing", "line1": "x", "city": "y", "country": "XX"}]),
            ["body", "addresses", "0", "country"],
        ),
        (
            body(addresses=[{"kind": "billing", "line1": "x", "city": "y", "country": "GBR"}]),
            ["body", "addresses", "0", "country"],
        ),
        (body(credit_limit="-0.01"), ["body", "credit_limit"]),
        (body(credit_limit="10.001"), ["body", "credit_limit"]),
        (body(phone="call me maybe"), ["body", "phone"]),
        (body(phone="12"), ["body", "phone"]),
        (body(kind="b2x"), ["body", "kind"]),
        (body(name="   "), ["body", "name"]),
        (body(contacts=[{"name": "Ann", "email": "ann@"}]), ["body", "contacts", "0", "email"]),
        (body(unexpected="field"), ["body", "unexpected"]),
        (
            body(
                addresses=[
                    {
                        "kind": "billing",
                        "line1": a,
                        "city": "b",
                        "country": "FR",
                        "is_default": True,
                    }
                    for a in ("one", "two")
                ]
            ),
            ["body", "addresses"],
        ),
    ],
)
async def test_invalid_create_is_422_problem_and_writes_nothing(
    stack: Stack, payload: dict[str, Any], loc: list[str]
) -> None:
    svc = await stack.start("customer", relay_enabled=False)
    r = await svc.http.post(
        "/customers", json=payload, headers={**auth("coordinator"), "Idempotency-Key": "bad"}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert loc in [e["loc"] for e in problem["errors"]]
    listed = await svc.http.get("/customers", headers=auth("ops"))
    assert listed.json()["items"] == []
    messaging = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
    assert messaging["outbox"]["pending"] == 0
    # The same key still works for a valid body: the 422 stored nothing.
    ok = await svc.http.post(
        "/customers", json=body(), headers={**auth("coordinator"), "Idempotency-Key": "bad"}
    )
    assert ok.status_code == 201
    messaging = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
    assert messaging["outbox"]["pending"] == 1


async def test_access_rules(customer_svc: RunningService) -> None:
    mine = await create(customer_svc, body("Mine"))
    theirs = await create(customer_svc, body("Theirs"))
    me = auth("customer", customer_id=mine["id"])

    assert (await customer_svc.http.get(f"/customers/{mine['id']}", headers=me)).status_code == 200
    other = await customer_svc.http.get(f"/customers/{theirs['id']}", headers=me)
    assert other.status_code == 404
    assert other.json()["code"] == "not_found"
    credit = await customer_svc.http.get(f"/customers/{theirs['id']}/credit", headers=me)
    assert credit.status_code == 404

    supplier = auth("supplier", supplier_id="s1")
    r = await customer_svc.http.get(f"/customers/{mine['id']}", headers=supplier)
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"

    r = await customer_svc.http.get(f"/customers/{mine['id']}")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM

    # Customers may not list, nor write; ops may read but not write.
    assert (await customer_svc.http.get("/customers", headers=me)).status_code == 403
    for headers in (me, auth("ops")):
        r = await customer_svc.http.patch(
            f"/customers/{mine['id']}", json={"name": "x"}, headers=headers
        )
        assert r.status_code == 403
        r = await customer_svc.http.post(
            "/customers", json=body(), headers={**headers, "Idempotency-Key": "k"}
        )
        assert r.status_code == 403
    assert (await customer_svc.http.get("/customers", headers=auth("service"))).status_code == 200


async def test_unknown_customer_is_404(customer_svc: RunningService) -> None:
    missing = str(uuid.uuid4())
    for method, path, payload in (
        ("GET", f"/customers/{missing}", None),
        ("PATCH", f"/customers/{missing}", {"name": "x"}),
        ("GET", f"/customers/{missing}/credit", None),
    ):
        r = await customer_svc.http.request(method, path, json=payload, headers=auth("coordinator"))
        assert r.status_code == 404, (method, path)
        assert r.json()["code"] == "not_found"


async def test_patch_changes_only_what_was_sent(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    created = await create(svc, FULL)
    cid = created["id"]
    r = await svc.http.patch(
        f"/customers/{cid}",
        json={
            "email": None,
            "phone": "+49 40 555-0000",
            "contacts": [{"name": "Lea Braun", "email": "LEA@example.org"}],
        },
        headers=auth("coordinator"),
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["email"] is None
    assert updated["phone"] == "+49405550000"
    assert [(c["name"], c["email"]) for c in updated["contacts"]] == [
        ("Lea Braun", "lea@example.org")
    ]
    assert updated["name"] == created["name"]
    assert updated["addresses"] == created["addresses"]  # untouched, same ids
    assert updated["credit_limit"] == "25000.00"
    assert updated["version"] == 2
    assert updated["updated_at"] > created["updated_at"]
    assert updated["created_at"] == created["created_at"]
    assert r.headers["etag"] == '"2"'
    assert (await svc.http.get(f"/customers/{cid}", headers=auth("ops"))).json() == updated

    # Sending the current values again changes nothing and emits nothing.
    same = await svc.http.patch(
        f"/customers/{cid}",
        json={"phone": "+49405550000", "addresses": FULL["addresses"]},
        headers=auth("coordinator"),
    )
    assert same.json()["version"] == 2
    assert same.json()["addresses"] == created["addresses"]

    await svc.http.patch(
        f"/customers/{cid}", json={"credit_hold": True}, headers=auth("coordinator")
    )

    def updates() -> Any:
        return stream_events(bus, "CUSTOMER", "customer.customer.updated")

    events = await eventually(lambda: _at_least(updates, 2), message="two CustomerUpdated events")
    assert sorted(sorted(e.data["changed"]) for e in events) == [
        ["contacts", "email", "phone"],
        ["credit_hold"],
    ]
    credit = await eventually(
        lambda: stream_events(bus, "CUSTOMER", "customer.credit.changed"),
        message="CustomerCreditChanged",
    )
    # Only the credit_hold change touched credit.
    assert [e.data for e in credit] == [
        {
            "customer_id": cid,
            "credit_limit": "25000.00",
            "credit_hold": True,
            "open_order_value": "0.00",
        }
    ]


async def _at_least(fetch: Any, n: int) -> Any:
    items = await fetch()
    return items if len(items) >= n else None


async def test_patch_replaces_addresses_and_clears_credit_limit(
    customer_svc: RunningService,
) -> None:
    created = await create(customer_svc, FULL)
    new_addresses = [
        {"kind": "billing", "line1": "Rue 1", "city": "Paris", "country": "fr"},
        {"kind": "shipping", "line1": "Quai 2", "city": "Lyon", "country": "FR"},
    ]
    r = await customer_svc.http.patch(
        f"/customers/{created['id']}",
        json={"addresses": new_addresses, "credit_limit": None, "name": "Müller France"},
        headers=auth("coordinator"),
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert [(a["kind"], a["city"], a["is_default"]) for a in updated["addresses"]] == [
        ("billing", "Paris", True),
        ("shipping", "Lyon", True),
    ]
    old_ids = {a["id"] for a in created["addresses"]}
    assert not old_ids & {a["id"] for a in updated["addresses"]}
    assert updated["credit_limit"] is None
    assert updated["name"] == "Müller France"
    # The new name is searchable; the old one's trigrams are gone.
    found = await customer_svc.http.get(
        "/customers", params={"q": "muller france"}, headers=auth("ops")
    )
    assert [c["id"] for c in found.json()["items"]] == [created["id"]]
    gone = await customer_svc.http.get("/customers", params={"q": "gmbh"}, headers=auth("ops"))
    assert gone.json()["items"] == []


@pytest.mark.parametrize(
    "payload",
    [
        {"name": None},
        {"credit_hold": None},
        {"addresses": None},
        {"kind": "b2c"},
        {"credit_limit": "-5"},
        {"email": "nope"},
        {"addresses": [{"kind": "home", "line1": "x", "city": "y", "country": "GB"}]},
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    customer_svc: RunningService, payload: dict[str, Any]
) -> None:
    created = await create(customer_svc, FULL)
    r = await customer_svc.http.patch(
        f"/customers/{created['id']}", json=payload, headers=auth("coordinator")
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    now = await customer_svc.http.get(f"/customers/{created['id']}", headers=auth("ops"))
    assert now.json() == created


async def test_if_match_refuses_a_stale_update(customer_svc: RunningService) -> None:
    created = await create(customer_svc, body())
    url = f"/customers/{created['id']}"
    first = await customer_svc.http.patch(
        url, json={"name": "Acme One"}, headers={**auth("coordinator"), "If-Match": '"1"'}
    )
    assert first.status_code == 200
    stale = await customer_svc.http.patch(
        url, json={"name": "Acme Two"}, headers={**auth("coordinator"), "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    fresh = await customer_svc.http.patch(
        url, json={"name": "Acme Two"}, headers={**auth("coordinator"), "If-Match": 'W/"2"'}
    )
    assert fresh.status_code == 200
    assert fresh.json()["name"] == "Acme Two"


async def test_list_pages_through_everyone_in_name_order(customer_svc: RunningService) -> None:
    names = [
        "zeta Freight",
        "Alpha Cargo",
        "Älpine Haulage",
        "beta Shipping",
        "Gamma Parcel",
        "Delta Express",
        "epsilon Movers",
    ]
    kinds = {}
    for i, name in enumerate(names):
        created = await create(customer_svc, body(name, kind="b2c" if i % 2 else "b2b"))
        kinds[created["id"]] = created["kind"]
    # Two customers with one name: the id breaks the tie, neither is lost.
    twins = [await create(customer_svc, body("Twin Ltd")) for _ in range(2)]

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = await customer_svc.http.get("/customers", params=params, headers=auth("ops"))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 3
        assert all(item["score"] is None for item in page["items"])
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [c["name"] for c in seen] == [
        "Alpha Cargo",
        "Älpine Haulage",
        "beta Shipping",
        "Delta Express",
        "epsilon Movers",
        "Gamma Parcel",
        "Twin Ltd",
        "Twin Ltd",
        "zeta Freight",
    ]
    twin_ids = sorted(t["id"] for t in twins)
    assert [c["id"] for c in seen if c["name"] == "Twin Ltd"] == twin_ids

    b2c = await customer_svc.http.get(
        "/customers", params={"kind": "b2c", "limit": 200}, headers=auth("ops")
    )
    assert {c["id"] for c in b2c.json()["items"]} == {i for i, k in kinds.items() if k == "b2c"}


async def test_list_filters_by_credit_hold(customer_svc: RunningService) -> None:
    held = await create(customer_svc, body("Held Co", credit_hold=True))
    await create(customer_svc, body("Free Co"))
    r = await customer_svc.http.get(
        "/customers", params={"credit_hold": "true"}, headers=auth("ops")
    )
    assert [c["id"] for c in r.json()["items"]] == [held["id"]]


async def test_bad_cursor_is_400(customer_svc: RunningService) -> None:
    for i in range(3):
        await create(customer_svc, body(f"Customer {i}"))
    page = await customer_svc.http.get("/customers", params={"limit": 1}, headers=auth("ops"))
    cursor = page.json()["next_cursor"]
    assert cursor
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    # A cursor is [mode, filters fingerprint, *sort key].
    forged = base64.urlsafe_b64encode(json.dumps([*data[:2], 1, None]).encode()).decode()
    search = await customer_svc.http.get(
        "/customers", params={"q": "customer", "limit": 1}, headers=auth("ops")
    )
    ranked = search.json()["next_cursor"]
    data = json.loads(base64.urlsafe_b64decode(ranked + "=" * (-len(ranked) % 4)))
    forged_rank = base64.urlsafe_b64encode(
        json.dumps([*data[:2], "x", 0.5, "a", "b"]).encode()
    ).decode()
    for params in (
        {"cursor": forged},  # the right filters, keys of the wrong type
        {"cursor": forged_rank, "q": "customer"},
        {"cursor": "garbage!"},
        {"cursor": "eyJ4IjoxfQ"},  # valid base64 JSON, not a cursor
        {"cursor": cursor, "kind": "b2c"},  # another filter than the one it came from
        {"cursor": cursor, "q": "customer"},
    ):
        r = await customer_svc.http.get("/customers", params=params, headers=auth("ops"))
        assert r.status_code == 400, params
        assert r.json()["code"] == "invalid_cursor"
