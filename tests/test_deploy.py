"""docker-compose.yml and deploy/k8s probe every Waybill process where it answers."""

from __future__ import annotations

from typing import Any

import yaml  # PyYAML comes with uvicorn[standard]

from cli.launcher import PROBE_PORTS
from services.common.settings import PROJECT_ROOT, SERVICE_PORTS

PORTS = {**SERVICE_PORTS, **PROBE_PORTS}


def test_compose_checks_every_process_on_its_readyz() -> None:
    """Each service, the worker and the bridge have a healthcheck on their own /readyz."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    for name, port in PORTS.items():
        check = compose["services"][name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(check["test"]), name


def test_kubernetes_probes_every_process() -> None:
    """Each Deployment has startup, readiness (/readyz) and liveness (/healthz) probes on
    the port the process listens on, and listens on the pod's address."""
    for name, port in PORTS.items():
        docs = list(yaml.safe_load_all((PROJECT_ROOT / "deploy/k8s" / f"{name}.yaml").read_text()))
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert env.get(f"WAYBILL_{name.upper()}_HOST") == "0.0.0.0", name
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
        ):
            get = container[probe]["httpGet"]
            assert get["path"] == path, (name, probe)
            assert ports[get["port"]] == port, (name, probe)
