"""Customer service settings (`WAYBILL_CUSTOMER_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class CustomerSettings(ServiceSettings):
    service: ClassVar[str] = "customer"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_CUSTOMER_", extra="ignore")


@lru_cache
def get_settings() -> CustomerSettings:
    return CustomerSettings()
