"""The `waybill` CLI: tokens the services accept, traces printed as trees, the catalogue."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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


def test_token_for_customer_without_id_is_refused() -> None:
    out = run("token", "--role", "customer", env={"WAYBILL_JWT_SECRET": JWT_SECRET})
    assert out.returncode == 2
    assert "customer_id" in out.stderr


def test_trace_prints_the_span_tree(tmp_path: Path) -> None:
    trace_id = "ab" * 16
    spans = [
        {
            "trace_id": trace_id,
            "span_id": "1" * 16,
            "parent_id": None,
            "name": "POST /orders",
            "kind": "server",
            "service": "waybill-order",
            "start_ns": 0,
            "end_ns": 5_000_000,
            "status": "unset",
            "attributes": {},
            "events": [],
            "links": [],
        },
        {
            "trace_id": trace_id,
            "span_id": "2" * 16,
            "parent_id": "1" * 16,
            "name": "order.order.placed publish",
            "kind": "producer",
            "service": "waybill-order",
            "start_ns": 1_000_000,
            "end_ns": 2_000_000,
            "status": "error",
            "attributes": {},
            "events": [],
            "links": [],
        },
    ]
    (tmp_path / "order.jsonl").write_text("".join(json.dumps(s) + "\n" for s in spans))
    out = run("trace", trace_id, env={"WAYBILL_TRACE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("POST /orders  [waybill-order]")
    assert lines[1].startswith("  order.order.placed publish") and lines[1].endswith("!")
    listing = run("trace", env={"WAYBILL_TRACE_DIR": str(tmp_path)})
    assert f"{trace_id}     2 spans  POST /orders" in listing.stdout


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
