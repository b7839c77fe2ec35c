"""Shipment service settings (`WAYBILL_SHIPMENT_*`, falling back to `WAYBILL_*`)."""

import hashlib
import hmac
from functools import lru_cache
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ShipmentSettings(ServiceSettings):
    service: ClassVar[str] = "shipment"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_SHIPMENT_", extra="ignore")

    # Carrier webhooks: HMAC-SHA256 key for `X-Waybill-Signature`; empty derives one from
    # the JWT secret, so a fresh install works without configuring anything.
    webhook_secret: str = ""
    webhook_max_events: int = Field(default=1000, ge=1)
    webhook_max_bytes: int = Field(default=1_000_000, ge=1024)

    # The simulated carrier: deterministic scenarios, time-scaled, fed by a background task.
    simulator_enabled: bool = True
    simulator_seed: int = 42
    simulator_seconds_per_hour: float = Field(default=0.05, gt=0)
    simulator_poll_seconds: float = Field(default=1.0, gt=0)

    # Packing: lines are split into parcels of at most this weight.
    package_max_weight_kg: float = Field(default=20.0, gt=0)
    default_unit_weight_grams: int = Field(default=500, gt=0)
    max_packages: int = Field(default=999, ge=1)

    def resolved_webhook_secret(self) -> str:
        """The configured webhook secret, or one derived from the JWT secret."""
        if self.webhook_secret:
            return self.webhook_secret
        return hmac.new(
            self.resolved_jwt_secret().encode(),
            b"waybill shipment carrier webhooks",
            hashlib.sha256,
        ).hexdigest()


@lru_cache
def get_settings() -> ShipmentSettings:
    return ShipmentSettings()
