"""Returns service settings (`WAYBILL_RETURNS_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ReturnsSettings(ServiceSettings):
    service: ClassVar[str] = "returns"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_RETURNS_", extra="ignore")


@lru_cache
def get_settings() -> ReturnsSettings:
    return ReturnsSettings()
