"""Every service's OpenAPI document against the live service, with schemathesis 4.

Each service runs for real (harness: NATS, its own SQLite or PostgreSQL database) with a
little seeded data (the objects the documents' examples name), and `st run --checks all`
walks every phase (examples, coverage, fuzzing, stateful over the documented links)
against it. Requests carry a coordinator's token, or a service's for the operations whose
documented roles are `service` alone (schemathesis.toml); hooks.py gives every creation
a fresh `Idempotency-Key`. Any failure fails the test with schemathesis's report.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.harness import SERVICES, RunningService, Stack, auth, token

# Bounded so the five runs together take a few minutes on CI's two cores.
MAX_EXAMPLES = int(os.environ.get("WAYBILL_CONTRACT_EXAMPLES", "15"))
MAX_SECONDS = int(os.environ.get("WAYBILL_CONTRACT_SECONDS", "150"))
ST = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).with_name("schemathesis.toml")
ROOT = Path(__file__).resolve().parents[2]


async def _seed_order(svc: RunningService) -> None:
    """The warehouse, SKU and lot the order service's examples name, in stock."""
    coordinator = auth("coordinator", subject="contract-seed")
    creations = [
        ("/warehouses", {"id": "WH-NORTH", "name": "North", "country": "GB"}),
        (
            "/catalogue/skus",
            {"code": "CHAI-500G", "name": "Chai 500 g", "unit_price": "12.50", "weight_grams": 500},
        ),
        (
            "/stock/receipts",
            {"warehouse_id": "WH-NORTH", "sku": "CHAI-500G", "lot": "L2025-031", "quantity": 100},
        ),
    ]
    for path, body in creations:
        response = await svc.http.post(
            path, json=body, headers={**coordinator, "Idempotency-Key": f"seed-{path}"}
        )
        assert response.status_code < 300, response.text


SEEDS = {"order": _seed_order}


async def run_schemathesis(svc: RunningService, tmp: Path) -> tuple[int, str]:
    """Run `st run` against the live service; its exit code and its report."""
    args = [
        str(ST),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{svc.url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "1",
        "--generation-database",
        "none",
        # U+0000 in text is refused (422 `invalid_character`, test_openapi.py), a
        # rule over every string that no schema states once.
        "--generation-allow-x00",
        "false",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "-H",
        f"Authorization: Bearer {token('coordinator', subject='contract-coordinator')}",
    ]
    env = {
        **os.environ,
        "WAYBILL_CONTRACT_SERVICE_TOKEN": token("service", subject="contract"),
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=tmp,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), MAX_SECONDS + 60)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return -1, out.decode(errors="replace") + "\n(schemathesis ran out of time)"
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.timeout(MAX_SECONDS + 120)
@pytest.mark.parametrize("service", SERVICES)
async def test_openapi_contract(stack: Stack, service: str, tmp_path: Path) -> None:
    """schemathesis finds no failure: the document tells the whole contract."""
    svc = await stack.start(service)
    if service in SEEDS:
        await SEEDS[service](svc)
    code, report = await run_schemathesis(svc, tmp_path)
    print(report)
    assert code == 0, f"schemathesis found failures on {service}:\n{report[-20000:]}"
