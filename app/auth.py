"""Who is calling: the admin token, a publisher token, or a customer JWT (SPEC §1, §7)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Depends, Header, Path

from app.context import Context
from app.deps import Ctx
from app.errors import (
    Forbidden,
    InvalidCredentials,
    InvalidHeaders,
    MissingCredentials,
    TokenExpired,
)
from app.security import SigningKey, hash_token, tokens_equal

JWT_ALGORITHM = "RS256"
JWT_ISSUER = "storekit-sync"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "customerId", "publisherId"]
MAX_ID = 2**63 - 1
JWT_LEEWAY = 5

PublisherIdPath = Annotated[int, Path(alias="publisherId", ge=1, le=MAX_ID)]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the operator, a publisher, or one customer of a publisher."""

    kind: str  # "admin" | "publisher" | "customer"
    publisher_id: int | None = None
    customer_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def issue_customer_jwt(
    context: Context, publisher_id: int, customer_id: int, now: datetime
) -> tuple[str, datetime]:
    expires = now + timedelta(seconds=context.settings.customer_token_ttl)
    claims = {
        "iss": JWT_ISSUER,
        "customerId": customer_id,
        "publisherId": publisher_id,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    key = context.signing_key
    token = jwt.encode(claims, key.private_key, algorithm=JWT_ALGORITHM, headers={"kid": key.kid})
    return token, expires


def _check_expiry(claims: dict[str, Any], now: datetime) -> None:
    """`exp` is checked against the service's clock, the one that set it, and only once the
    signature is verified: a forged token never learns more than "Invalid credentials"."""
    expires = claims["exp"]
    if not isinstance(expires, int | float):
        raise InvalidCredentials()
    if expires <= now.timestamp() - JWT_LEEWAY:
        raise TokenExpired()


def _verifying_key(key: SigningKey, token: str) -> RSAPublicKey:
    """The key the token's `kid` names (the current one when it names none), loaded at start."""
    kid = jwt.get_unverified_header(token).get("kid", key.kid)
    public = key.verifying_key(kid) if isinstance(kid, str) else None
    if public is None:
        raise InvalidCredentials()
    return public


def decode_customer_jwt(context: Context, token: str) -> Caller:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _verifying_key(context.signing_key, token),
            algorithms=[JWT_ALGORITHM],
            issuer=JWT_ISSUER,
            options={"require": REQUIRED_CLAIMS, "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidCredentials() from exc
    _check_expiry(claims, context.clock.now())
    customer_id, publisher_id = claims["customerId"], claims["publisherId"]
    if not (type(customer_id) is int and type(publisher_id) is int):
        raise InvalidCredentials()
    return Caller("customer", publisher_id=publisher_id, customer_id=customer_id)


TOKEN_CACHE_SECONDS = 60.0
TOKEN_CACHE_SIZE = 10_000


PUBLISHER_BY_TOKEN = "SELECT id, token_hash FROM publishers WHERE token_hash = $1"  # noqa: S105 (SQL)


async def _publisher_from_token(context: Context, token: str) -> Caller:
    """The publisher whose token hashes to this one; a hit is kept a minute in this process.
    Looked up on the plain pool: no session, no transaction, for every authenticated request."""
    digest = hash_token(token)
    cached = context.publisher_tokens.get(digest)
    if cached is not None and cached[1] > time.monotonic():
        return Caller("publisher", publisher_id=cached[0])
    row = await context.pg.fetchrow(PUBLISHER_BY_TOKEN, digest)
    if row is None or not tokens_equal(row["token_hash"], digest):
        raise InvalidCredentials()
    publisher_id = int(row["id"])
    if len(context.publisher_tokens) >= TOKEN_CACHE_SIZE:
        context.publisher_tokens.clear()
    context.publisher_tokens[digest] = (publisher_id, time.monotonic() + TOKEN_CACHE_SECONDS)
    return Caller("publisher", publisher_id=publisher_id)


def _admin(context: Context, token: str) -> Caller:
    expected = context.settings.admin_token
    if expected is None or not tokens_equal(token, expected):
        raise InvalidCredentials()
    return Caller("admin")


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidCredentials()
    return token.strip()


async def get_caller(
    context: Ctx,
    x_admin_token: Annotated[str | None, Header()] = None,
    x_publisher_token: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    given = [h for h in (x_admin_token, x_publisher_token, authorization) if h is not None]
    if not given:
        raise MissingCredentials()
    if len(given) > 1:
        raise InvalidHeaders()
    if x_admin_token is not None:
        return _admin(context, x_admin_token)
    if x_publisher_token is not None:
        return await _publisher_from_token(context, x_publisher_token)
    return decode_customer_jwt(context, _bearer(authorization or ""))


AnyCaller = Annotated[Caller, Depends(get_caller)]


async def require_admin(caller: AnyCaller) -> Caller:
    if not caller.is_admin:
        raise Forbidden()
    return caller


async def require_publisher_access(caller: AnyCaller, publisher_id: PublisherIdPath) -> Caller:
    """The admin, or the publisher named in the path with its own token."""
    if caller.is_admin:
        return caller
    if caller.kind == "publisher" and caller.publisher_id == publisher_id:
        return caller
    raise Forbidden()


async def require_publisher(caller: AnyCaller) -> Caller:
    if caller.kind != "publisher":
        raise Forbidden()
    return caller


async def require_customer(caller: AnyCaller) -> Caller:
    if caller.kind != "customer":
        raise Forbidden()
    return caller


async def require_publisher_or_customer(caller: AnyCaller) -> Caller:
    if caller.kind not in ("publisher", "customer"):
        raise Forbidden()
    return caller


Admin = Annotated[Caller, Depends(require_admin)]
PublisherAccess = Annotated[Caller, Depends(require_publisher_access)]
PublisherCaller = Annotated[Caller, Depends(require_publisher)]
CustomerCaller = Annotated[Caller, Depends(require_customer)]
PublisherOrCustomer = Annotated[Caller, Depends(require_publisher_or_customer)]
