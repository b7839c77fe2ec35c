"""Settings from the environment: one prefix per service, `WAYBILL_` for shared values.

`WAYBILL_ORDER_DATABASE_URL` configures only the order service; `WAYBILL_NATS_URL`
is read by every process unless a service-specific value overrides it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from services.common.retry import RetryPolicy

# How long the JetStream streams keep messages; processed-event ids must outlive them.
STREAM_RETENTION_DAYS = 30

SERVICE_PORTS: dict[str, int] = {
    "customer": 8001,
    "order": 8002,
    "shipment": 8003,
    "returns": 8004,
    "supplier": 8005,
}

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    """Where local state lives (databases, NATS store, traces, generated secret)."""
    return Path(SharedSettings().var_dir)


class _Layered(BaseSettings):
    """Settings read from `<prefix>FIELD`, falling back to `WAYBILL_FIELD`."""

    model_config = SettingsConfigDict(env_prefix="WAYBILL_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = EnvSettingsSource(settings_cls, env_prefix="WAYBILL_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings


class SharedSettings(_Layered):
    """Values every Waybill process needs."""

    var_dir: str = str(PROJECT_ROOT / "var")
    nats_url: str = "nats://127.0.0.1:4222"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "waybill"
    jwt_secret: str = ""
    jwt_issuer: str = "waybill"
    # Where each service answers; activities and the CLI call the services through these.
    customer_url: str = f"http://127.0.0.1:{SERVICE_PORTS['customer']}"
    order_url: str = f"http://127.0.0.1:{SERVICE_PORTS['order']}"
    shipment_url: str = f"http://127.0.0.1:{SERVICE_PORTS['shipment']}"
    returns_url: str = f"http://127.0.0.1:{SERVICE_PORTS['returns']}"
    supplier_url: str = f"http://127.0.0.1:{SERVICE_PORTS['supplier']}"
    # Consumer retries (services.common.retry): transient failures back off from
    # `consumer_backoff_seconds` doubling to `consumer_backoff_max_seconds`, for ever;
    # a failure of unknown kind is dead-lettered after `consumer_max_deliver` attempts.
    consumer_max_deliver: int = Field(10, ge=1)
    consumer_backoff_seconds: float = Field(0.5, gt=0)
    consumer_backoff_max_seconds: float = Field(60.0, gt=0)
    consumer_ack_wait_seconds: float = Field(30.0, gt=0)
    # The largest event `stage()` accepts; keep it below the NATS server's max_payload (1 MiB).
    max_event_bytes: int = Field(512 * 1024, gt=0)

    def resolved_jwt_secret(self) -> str:
        """The configured secret, or the one generated for the embedded default."""
        if self.jwt_secret:
            return self.jwt_secret
        path = Path(self.var_dir) / "jwt-secret"
        if path.exists():
            return path.read_text().strip()
        raise RuntimeError(
            "no JWT secret: set WAYBILL_JWT_SECRET or start the system once with `./waybill up`"
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_seconds=self.consumer_backoff_seconds,
            cap_seconds=self.consumer_backoff_max_seconds,
            unknown_attempts=self.consumer_max_deliver,
        )

    def service_url(self, service: str) -> str:
        url: str = getattr(self, f"{service}_url")
        return url


class ServiceSettings(SharedSettings):
    """Settings for one HTTP service; subclasses set `service` and the env prefix."""

    service: ClassVar[str] = ""
    host: str = "127.0.0.1"
    port: int = 0
    database_url: str = ""
    outbox_poll_seconds: float = 0.5
    outbox_batch: int = 256
    relay_enabled: bool = True
    consumers_enabled: bool = True
    housekeeping_interval_seconds: float = Field(3600.0, gt=0)
    outbox_keep_days: float = Field(7.0, ge=0)
    inbox_keep_days: float = Field(STREAM_RETENTION_DAYS + 1.0, ge=STREAM_RETENTION_DAYS)
    idempotency_keep_days: float = Field(7.0, gt=0)
    # Request bodies over this are refused with 413 while they are read (limits.py).
    max_body_bytes: int = Field(1024 * 1024, ge=1024)

    def model_post_init(self, __context: object) -> None:
        if not self.port:
            self.port = SERVICE_PORTS[self.service]
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{Path(self.var_dir) / (self.service + '.db')}"


@lru_cache
def get_shared_settings() -> SharedSettings:
    return SharedSettings()
