"""Connecting to Temporal the same way everywhere: pydantic payloads, OpenTelemetry."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from services.common.settings import SharedSettings
from services.common.temporal import interceptors


class WorkflowSettings(SharedSettings):
    """Settings of the worker and bridge processes (`WAYBILL_WORKFLOWS_*`)."""

    service: ClassVar[str] = "workflows"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_WORKFLOWS_", extra="ignore")
    # Sized for a small machine: more in flight only makes workflow tasks time out.
    max_concurrent_activities: int = 50
    max_concurrent_local_activities: int = 50
    max_concurrent_workflow_tasks: int = 50
    credit_hold_timeout_seconds: float = 3 * 24 * 3600
    backorder_timeout_seconds: float = 7 * 24 * 3600
    ship_partial_on_backorder_timeout: bool = True


@lru_cache
def get_settings() -> WorkflowSettings:
    return WorkflowSettings()


async def connect(settings: SharedSettings) -> Client:
    """A Temporal client that carries trace context and speaks pydantic."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
    )
