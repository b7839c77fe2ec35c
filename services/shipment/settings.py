"""Shipment service settings (`WAYBILL_SHIPMENT_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ShipmentSettings(ServiceSettings):
    service: ClassVar[str] = "shipment"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_SHIPMENT_", extra="ignore")


@lru_cache
def get_settings() -> ShipmentSettings:
    return ShipmentSettings()
