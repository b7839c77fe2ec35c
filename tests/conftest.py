"""Session-wide real servers (Temporal) and per-test ones (NATS, databases, services)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from services.common import telemetry
from services.common.bus import Bus
from services.common.tasks import stop_tasks, with_deadline
from services.common.temporal import interceptors
from tests import harness
from tests.harness import BIN, Databases, SmtpServer, Stack
from workflows.bridge import bridges
from workflows.runtime import WorkflowSettings
from workflows.services import ServiceClients
from workflows.worker import build_worker

_ROOT = Path(tempfile.mkdtemp(prefix="waybill-tests-"))
TRACE_DIR = _ROOT / "traces"
os.environ["WAYBILL_TRACE_DIR"] = str(TRACE_DIR)
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
telemetry.setup_tracing("tests", _ROOT)


@pytest.fixture(scope="session")
def root_dir() -> Path:
    return _ROOT


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    with harness.nats_server(tmp_path) as url:
        yield url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    b = Bus(nats_url, "tests")
    await b.connect()
    yield b
    await b.close()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP server keeping what it receives (in `tmp_path/mail`)."""
    server = SmtpServer(tmp_path / "mail")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def databases(tmp_path: Path) -> AsyncIterator[Databases]:
    dbs = Databases(tmp_path)
    yield dbs
    await dbs.drop_all()


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    nats_url: str,
    temporal: WorkflowEnvironment,
    databases: Databases,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """A test's services; `@pytest.mark.settings(order={...}, workflows={...})` overrides."""
    s = Stack(
        nats_url=nats_url,
        temporal_address=temporal.client.service_client.config.target_host,
        databases=databases,
        var_dir=tmp_path,
    )
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        overrides = dict(marker.kwargs)
        s.workflow_overrides = overrides.pop("workflows", {})
        s.service_overrides = overrides
    yield s
    await s.close()


def workflow_settings(stack: Stack) -> WorkflowSettings:
    return WorkflowSettings(**{**stack.shared(), **stack.workflow_overrides})


@pytest.fixture
async def worker(stack: Stack, temporal: WorkflowEnvironment) -> AsyncIterator[None]:
    """The real worker (every workflow and activity) on this test's task queue."""
    settings = workflow_settings(stack)
    clients = ServiceClients(settings)
    w = build_worker(temporal.client, settings, clients)
    task = asyncio.create_task(w.run())
    yield
    await with_deadline(w.shutdown(), 30, "worker shutdown")
    await stop_tasks([task], deadline=10)
    await clients.close()


@pytest.fixture
async def bridge(stack: Stack, temporal: WorkflowEnvironment) -> AsyncIterator[None]:
    """The NATS -> Temporal bridge for this test's stack."""
    b = Bus(stack.nats_url, "bridge")
    await b.connect()
    settings = workflow_settings(stack)
    workers = bridges(b, temporal.client, settings)
    for w in workers:
        await b.ensure_domain_stream(w.stream.lower())
    await b.ensure_deadletter_stream()
    tasks = [asyncio.create_task(w.run()) for w in workers]
    yield
    await stop_tasks(tasks)
    await b.close()


@pytest.fixture
async def system(stack: Stack, worker: None, bridge: None) -> Stack:
    """All five services, the worker and the bridge."""
    for service in harness.SERVICES:
        await stack.start(service)
    return stack
