"""Customer service settings (`WAYBILL_CUSTOMER_*`, falling back to `WAYBILL_*`)."""

from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class CustomerSettings(ServiceSettings):
    service: ClassVar[str] = "customer"
    model_config = SettingsConfigDict(env_prefix="WAYBILL_CUSTOMER_", extra="ignore")

    # Where notices are sent (`waybill up` points these at its local mail sink).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(8025, ge=1, le=65535)
    # `none`: plain SMTP; `starttls`: upgrade after connecting; `tls`: implicit TLS.
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    mail_from: str = "Waybill <notices@waybill.example>"
    # The sender loop: pending notices are sent when committed (and every poll); a
    # transient failure waits `notice_backoff_seconds · 2^(attempts-1)`, at most
    # `notice_backoff_max_seconds`, for ever.
    notices_enabled: bool = True
    notice_poll_seconds: float = Field(1.0, gt=0)
    notice_batch: int = Field(20, ge=1, le=1000)
    notice_backoff_seconds: float = Field(1.0, gt=0)
    notice_backoff_max_seconds: float = Field(300.0, gt=0)
    # A notice being sent is leased this long, so another replica does not send it too.
    notice_lease_seconds: float = Field(60.0, gt=0)


@lru_cache
def get_settings() -> CustomerSettings:
    return CustomerSettings()
