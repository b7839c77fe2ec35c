"""Supplier service settings (`WAYBILL_SUPPLIER_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class SupplierSettings(ServiceSettings):
    service: ClassVar[str] = "supplier"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_SUPPLIER_", extra="ignore")

    # The webhook sender (`webhooks.py`): signals are posted when committed (and every
    # poll); a failed post waits `webhook_backoff_seconds · 2^(attempts-1)`, at most
    # `webhook_backoff_max_seconds`, until the delivery is `webhook_max_age_hours` old:
    # then it is `failed`, visible on `GET /suppliers/{id}/webhook-deliveries`.
    webhooks_enabled: bool = True
    webhook_poll_seconds: float = Field(1.0, gt=0)
    webhook_batch: int = Field(20, ge=1, le=1000)
    webhook_backoff_seconds: float = Field(1.0, gt=0)
    webhook_backoff_max_seconds: float = Field(300.0, gt=0)
    webhook_max_age_hours: float = Field(72.0, gt=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    # A delivery being posted is leased this long, so another replica does not post it too.
    webhook_lease_seconds: float = Field(60.0, gt=0)


@lru_cache
def get_settings() -> SupplierSettings:
    return SupplierSettings()
