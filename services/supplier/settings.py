"""Supplier service settings (`WAYBILL_SUPPLIER_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class SupplierSettings(ServiceSettings):
    service: ClassVar[str] = "supplier"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_SUPPLIER_", extra="ignore")


@lru_cache
def get_settings() -> SupplierSettings:
    return SupplierSettings()
