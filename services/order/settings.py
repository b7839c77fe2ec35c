"""Order service settings (`WAYBILL_ORDER_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    service: ClassVar[str] = "order"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_ORDER_", extra="ignore")


@lru_cache
def get_settings() -> OrderSettings:
    return OrderSettings()
