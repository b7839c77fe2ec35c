"""JWT bearer auth: who is calling, and which objects they may see.

Roles: `coordinator` and `ops` see everything, `service` is another Waybill
process, `customer` carries a `customer_id` claim and sees only its own objects,
`supplier` carries a `supplier_id` claim and sees only its own.

A token's subject names a user, not a token: a refreshed token for the same user has
the same subject (staff default `<role>:local`, `waybill token` uses `<role>:<login>`),
so what is remembered per caller (stored `Idempotency-Key` answers) survives a refresh.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.problems import Forbidden, NotFound, Unauthorized


class Role(StrEnum):
    COORDINATOR = "coordinator"
    CUSTOMER = "customer"
    SUPPLIER = "supplier"
    OPS = "ops"
    SERVICE = "service"


STAFF = (Role.COORDINATOR, Role.OPS, Role.SERVICE)
ALGORITHM = "HS256"
# A subject is recorded as the actor of what the caller does (`created_by`, `placed_by`, ...).
SUBJECT_MAX_LENGTH = 128


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    subject: str
    role: Role
    customer_id: str | None = None
    supplier_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def identity(self) -> str:
        """Who the caller is across token refreshes: subject, role and tenant ids, hashed to a
        fixed length (the same user with a new token has the same identity; two users never do)."""
        parts = (self.subject, self.role.value, self.customer_id or "", self.supplier_id or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def may_see_customer(self, customer_id: str) -> bool:
        return self.is_staff or (self.role is Role.CUSTOMER and self.customer_id == customer_id)

    def may_see_supplier(self, supplier_id: str) -> bool:
        return self.is_staff or (self.role is Role.SUPPLIER and self.supplier_id == supplier_id)

    def ensure_customer(self, customer_id: str, what: str = "resource") -> None:
        """404 (not 403) so a customer cannot probe which ids exist."""
        if not self.may_see_customer(customer_id):
            raise NotFound(f"{what} not found")

    def ensure_supplier(self, supplier_id: str, what: str = "resource") -> None:
        if not self.may_see_supplier(supplier_id):
            raise NotFound(f"{what} not found")


def staff_subject(role: Role | str, user: str = "local") -> str:
    """The stable subject of a staff user's tokens: `<role>:<user>`."""
    return f"{Role(role).value}:{user}"


def issue_token(
    secret: str,
    role: Role | str,
    *,
    subject: str | None = None,
    customer_id: str | None = None,
    supplier_id: str | None = None,
    ttl_seconds: int = 12 * 3600,
    issuer: str = "waybill",
) -> str:
    """A signed bearer token for `role` (customer/supplier roles need their id claim).

    `subject` names the user; without it a customer or supplier token is its tenant's id
    and a staff token `staff_subject(role)`, never a random value, so every token issued
    for the same user has the same subject."""
    role = Role(role)
    if role is Role.CUSTOMER and not customer_id:
        raise ValueError("a customer token needs customer_id")
    if role is Role.SUPPLIER and not supplier_id:
        raise ValueError("a supplier token needs supplier_id")
    if subject is not None and not 0 < len(subject) <= SUBJECT_MAX_LENGTH:
        raise ValueError(f"a subject has 1 to {SUBJECT_MAX_LENGTH} characters")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject or customer_id or supplier_id or staff_subject(role),
        "role": role.value,
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": issuer,
    }
    if customer_id:
        claims["customer_id"] = customer_id
    if supplier_id:
        claims["supplier_id"] = supplier_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class _VerifiedTokens:
    """Tokens already verified, until they expire: a client sends the same token on every
    request, and checking its signature and claims costs more than most reads."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str, str], tuple[Principal, float]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, expires = entry
        if time.time() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return principal

    def put(self, key: tuple[str, str, str], principal: Principal, expires: float) -> None:
        self._entries[key] = (principal, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


_verified = _VerifiedTokens()


def decode_token(secret: str, token: str, issuer: str = "waybill") -> Principal:
    """The principal of a valid token; 401 problem otherwise (verified once per token)."""
    key = (secret, issuer, token)
    principal = _verified.get(key)
    if principal is None:
        principal, expires = _verify(secret, token, issuer)
        _verified.put(key, principal, expires)
    return principal


def _verify(secret: str, token: str, issuer: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "sub", "role"]},
        )
        role = Role(claims["role"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized(
            f"invalid bearer token: {exc}",
            code="invalid_token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc
    principal = Principal(
        subject=str(claims["sub"]),
        role=role,
        customer_id=claims.get("customer_id"),
        supplier_id=claims.get("supplier_id"),
    )
    if not principal.subject or len(principal.subject) > SUBJECT_MAX_LENGTH:
        raise Unauthorized(
            f"token subject must have 1 to {SUBJECT_MAX_LENGTH} characters", code="invalid_token"
        )
    if role is Role.CUSTOMER and not principal.customer_id:
        raise Unauthorized("customer token without customer_id", code="invalid_token")
    if role is Role.SUPPLIER and not principal.supplier_id:
        raise Unauthorized("supplier token without supplier_id", code="invalid_token")
    return principal, float(claims["exp"])


_bearer = HTTPBearer(auto_error=False, description="JWT from `waybill token --role ...`")


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    """The caller's principal; 401 problem when the bearer token is missing or bad."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "send `Authorization: Bearer <token>`", headers={"WWW-Authenticate": "Bearer"}
        )
    state = request.app.state
    return decode_token(state.jwt_secret, credentials.credentials, state.settings.jwt_issuer)


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only `roles` (403 problem for any other role).

    The roles are the bearer requirement's scopes, so the OpenAPI document says who may
    call each route."""
    allowed = frozenset(roles)
    scopes = [role.value for role in roles]

    async def dependency(
        principal: Principal = Security(authenticate, scopes=scopes),
    ) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"role '{principal.role}' may not call this; allowed: "
                + ", ".join(sorted(r.value for r in allowed))
            )
        return principal

    return dependency
