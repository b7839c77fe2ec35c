"""HTTP access from activities to the services, as the `service` role, with trace context
and the correlation id."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from services.common import telemetry
from services.common.auth import Role, issue_token
from services.common.context import CORRELATION_HEADER, correlation_id
from services.common.settings import SharedSettings

# 4xx answers other than these mean the request (or the object's state) is wrong:
# retrying cannot help, so the failure reaches the workflow at once.
RETRYABLE_STATUS = {408, 425, 429}


class ServiceClients:
    """One pooled HTTP client for every service; errors become Temporal failures."""

    def __init__(self, settings: SharedSettings, timeout: float = 10.0) -> None:
        self.settings = settings
        self._secret = settings.resolved_jwt_secret()
        self._http = httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
        )

    def _token(self) -> str:
        return issue_token(
            self._secret,
            Role.SERVICE,
            subject="waybill-workflows",
            ttl_seconds=300,
            issuer=self.settings.jwt_issuer,
        )

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        time_limit: float | None = None,
    ) -> Any:
        """Call a service; non-retryable 4xx raise a non-retryable ApplicationError.
        `time_limit` (seconds) replaces the client's for a call known to take long."""
        url = self.settings.service_url(service) + path
        hdrs = telemetry.inject({"Authorization": f"Bearer {self._token()}", **(headers or {})})
        if (correlation := correlation_id.get()) is not None:
            hdrs.setdefault(CORRELATION_HEADER, correlation)
        response = await self._http.request(
            method,
            url,
            json=json,
            params=params,
            headers=hdrs,
            timeout=httpx.USE_CLIENT_DEFAULT if time_limit is None else time_limit,
        )
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code in RETRYABLE_STATUS
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ApplicationError(
                f"{method} {service}{path} -> {response.status_code}: "
                f"{problem.get('code', '')} {problem.get('detail', '')}".strip(),
                problem,
                type=str(problem.get("code", f"http_{response.status_code}")),
                non_retryable=not retryable,
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def close(self) -> None:
        await self._http.aclose()
