"""The `waybill` CLI: tokens the services accept, traces printed as trees, the catalogue."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from services.common.auth import Role, decode_token
from tests.harness import BIN, JWT_SECRET


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "waybill"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_token_carries_role_and_scope_claims() -> None:
    out = run(
        "token",
        "--role",
        "customer",
        "--customer-id",
        "c-42",
        env={"WAYBILL_JWT_SECRET": JWT_SECRET},
    )
    assert out.returncode == 0, out.stderr
    principal = decode_token(JWT_SECRET, out.stdout.strip())
    assert principal.role is Role.CUSTOMER and principal.customer_id == "c-42"


def test_staff_tokens_name_a_stable_user() -> None:
    """Two `waybill token` runs for one staff user carry one subject (`<role>:<user>`), so a
    retry with a refreshed token is the same caller; another user is another subject."""
    env = {"WAYBILL_JWT_SECRET": JWT_SECRET}
    tokens = [
        run("token", "--role", "coordinator", "--user", user, "--ttl", ttl, env=env)
        for user, ttl in (("carla", "60"), ("carla", "120"), ("dan", "60"))
    ]
    assert all(t.returncode == 0 for t in tokens), [t.stderr for t in tokens]
    subjects = [decode_token(JWT_SECRET, t.stdout.strip()).subject for t in tokens]
    assert subjects == ["coordinator:carla", "coordinator:carla", "coordinator:dan"]
    default = run("token", "--role", "ops", env=env)
    again = run("token", "--role", "ops", "--ttl", "60", env=env)
    assert decode_token(JWT_SECRET, default.stdout.strip()).subject.startswith("ops:")
    assert (
        decode_token(JWT_SECRET, default.stdout.strip()).subject
        == decode_token(JWT_SECRET, again.stdout.strip()).subject
    )


def test_token_for_customer_without_id_is_refused() -> None:
    out = run("token", "--role", "customer", env={"WAYBILL_JWT_SECRET": JWT_SECRET})
    assert out.returncode == 2
    assert "customer_id" in out.stderr


def span(
    trace_id: str, span_id: str, parent: str | None, name: str, **attrs: str
) -> dict[str, Any]:
    start = int(span_id[0], 16) * 1_000_000
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent,
        "name": name,
        "kind": "internal",
        "service": "waybill-order",
        "start_ns": start,
        "end_ns": start + 5_000_000,
        "status": "error" if name.endswith("publish") else "unset",
        "attributes": attrs,
        "events": [],
        "links": [],
    }


def write_spans(directory: Path, spans: list[dict[str, Any]]) -> dict[str, str]:
    (directory / "order.jsonl").write_text("".join(json.dumps(s) + "\n" for s in spans))
    return {"WAYBILL_TRACE_DIR": str(directory)}


def test_trace_prints_the_span_tree(tmp_path: Path) -> None:
    trace_id = "ab" * 16
    env = write_spans(
        tmp_path,
        [
            span(trace_id, "1" * 16, None, "POST /orders"),
            span(trace_id, "2" * 16, "1" * 16, "order.order.placed publish"),
            span("ac" * 16, "3" * 16, None, "POST /customers"),
        ],
    )
    out = run("trace", trace_id, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("POST /orders  [waybill-order]")
    assert lines[1].startswith("  order.order.placed publish") and lines[1].endswith("!")
    listing = run("trace", env=env)
    assert f"{trace_id}     2 spans  POST /orders" in listing.stdout

    # The first characters of an id are enough (the demo prints twelve) ...
    assert run("trace", trace_id[:12], env=env).stdout == out.stdout
    # ... unless they start several traces.
    ambiguous = run("trace", "a", env=env)
    assert ambiguous.returncode == 2
    assert "ab" * 16 in ambiguous.stderr and "ac" * 16 in ambiguous.stderr
    assert run("trace", "ff", env=env).returncode == 1


def test_trace_of_an_order_prints_every_trace_that_acted_on_it(tmp_path: Path) -> None:
    order = "0f1e2d3c-order"
    placed, scanned, polled, other = "a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16
    env = write_spans(
        tmp_path,
        [
            span(placed, "1" * 16, None, "POST /orders", **{"http.target": f"/orders/{order}"}),
            span(placed, "2" * 16, "1" * 16, "RunWorkflow", temporalWorkflowID=f"order-{order}"),
            span(scanned, "3" * 16, None, "shipment.shipment.tracking_updated publish"),
            span(
                scanned, "4" * 16, "3" * 16, "SignalWorkflow", temporalWorkflowID=f"order-{order}"
            ),
            span(polled, "5" * 16, None, "GET /orders/{id}/status", **{"http.target": order}),
            span(other, "6" * 16, None, "POST /orders", **{"http.target": "/orders/another"}),
        ],
    )
    out = run("trace", "--order", order, env=env)
    assert out.returncode == 0, out.stderr
    headers = [line for line in out.stdout.splitlines() if line.startswith("==")]
    assert [h.split("trace ")[1].split()[0] for h in headers] == [placed, scanned]
    assert "  SignalWorkflow  [waybill-order]" in out.stdout
    assert run("trace", "--order", "nothing-like-it", env=env).returncode == 1


def test_asyncapi_lists_every_event() -> None:
    out = run("asyncapi")
    doc = json.loads(out.stdout)
    assert doc["asyncapi"].startswith("3.")
    assert doc["channels"]["order_ping_requested_v1"]["address"] == "order.ping.requested"


def test_test_command_hands_every_argument_to_pytest() -> None:
    """`waybill test -p no:cacheprovider -k x` reaches pytest whole."""
    out = run(
        "test",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "asyncapi",
        "tests/common/test_cli.py",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_asyncapi_lists_every_event" in out.stdout
    assert "1/" in out.stdout or "1 test" in out.stdout or "1 selected" in out.stdout
