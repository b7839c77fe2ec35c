"""`waybill up` brings the whole system up, answers a round trip, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from services.common.auth import issue_token
from services.common.launcher import free_port
from tests.harness import BIN, SERVICES


def test_up_starts_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
    env["WAYBILL_VAR_DIR"] = str(tmp_path / "var")
    env["WAYBILL_NATS_PORT"] = str(free_port())
    env["WAYBILL_TEMPORAL_PORT"] = str(free_port())
    env["WAYBILL_TEMPORAL_UI_PORT"] = str(free_port())
    ports = {s: free_port() for s in SERVICES}
    for service, port in ports.items():
        env[f"WAYBILL_{service.upper()}_PORT"] = str(port)
    proc = subprocess.Popen(
        [str(BIN / "waybill"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            output.append(line)
            if "ready. Ctrl-C" in line or time.monotonic() > deadline:
                break
        text = "".join(output)
        assert "ready. Ctrl-C" in text, text
        for port in ports.values():
            assert f"http://127.0.0.1:{port}/docs" in text
        assert "Temporal UI" in text

        secret = (tmp_path / "var" / "jwt-secret").read_text().strip()
        headers = {"Authorization": f"Bearer {issue_token(secret, 'ops')}"}
        base = f"http://127.0.0.1:{ports['order']}"
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            r = http.post(
                "/diagnostics/pings",
                json={"message": "up"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 202, r.text
            ping_id = r.json()["id"]
            deadline = time.monotonic() + 30
            while http.get(f"/diagnostics/pings/{ping_id}").json()["status"] != "answered":
                assert time.monotonic() < deadline, "ping not answered through the running system"
                time.sleep(0.1)
        assert (tmp_path / "var" / "nats.conf").read_text().count("sync_interval: always") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, "".join(output)
    for port in ports.values():
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        except httpx.HTTPError:
            continue
        raise AssertionError(f"something still answers on {port} after Ctrl-C")
