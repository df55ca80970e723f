"""Who is calling: the admin token, a publisher token, or a customer JWT (docs/api.md §1, §7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Depends, Header, Path

from app.admin import repository as admin
from app.api.deps import Ctx
from app.callers import Caller, CallerKind
from app.context import Context
from app.errors import (
    ErrorDetail,
    Forbidden,
    InvalidCredentials,
    InvalidHeaders,
    MissingCredentials,
    NotFound,
    TokenExpired,
)
from app.security import SigningKey, tokens_equal

JWT_ALGORITHM = "RS256"
JWT_ISSUER = "storekit-sync"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "customerId", "publisherId"]
MAX_ID = 2**63 - 1
JWT_LEEWAY = 5

PublisherIdPath = Annotated[int, Path(alias="publisherId", ge=1, le=MAX_ID)]
CREDENTIALS = "no X-Admin-Token, X-Publisher-Token or Authorization: Bearer <customer JWT>"


def issue_customer_jwt(
    context: Context,
    publisher_id: int,
    customer_id: int,
    now: datetime,
    app_account_token: UUID | None = None,
) -> tuple[str, datetime]:
    """A customer JWT; `appAccountToken` is the customer's UUID for StoreKit (docs/api.md §7), for the
    app to pass when it buys."""
    expires = now + timedelta(seconds=context.settings.customer_token_ttl)
    claims: dict[str, Any] = {
        "iss": JWT_ISSUER,
        "customerId": customer_id,
        "publisherId": publisher_id,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    if app_account_token is not None:
        claims["appAccountToken"] = str(app_account_token)
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
    return Caller(CallerKind.CUSTOMER, publisher_id=publisher_id, customer_id=customer_id)


async def _publisher(context: Context, token: str) -> Caller:
    publisher_id = await context.tokens.publisher_of(token)
    if publisher_id is None:
        raise InvalidCredentials()
    return Caller(CallerKind.PUBLISHER, publisher_id=publisher_id)


def _admin(context: Context, token: str) -> Caller:
    expected = context.settings.admin_token
    if expected is None or not tokens_equal(token, expected):
        raise InvalidCredentials()
    return Caller(CallerKind.ADMIN)


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
    # An empty credential header counts as absent (docs/api.md §2).
    x_admin_token, x_publisher_token, authorization = (
        h if h and h.strip() else None for h in (x_admin_token, x_publisher_token, authorization)
    )
    given = [h for h in (x_admin_token, x_publisher_token, authorization) if h is not None]
    if not given:
        raise MissingCredentials(message=f"Missing credentials: {CREDENTIALS} header")
    if len(given) > 1:
        headers = {
            "X-Admin-Token": x_admin_token,
            "X-Publisher-Token": x_publisher_token,
            "Authorization": authorization,
        }
        sent = [name for name, value in headers.items() if value is not None]
        raise InvalidHeaders(
            [
                ErrorDetail(field=n, problem="several credentials given: send only one")
                for n in sent
            ],
            "Invalid headers: send one credential only (X-Admin-Token, X-Publisher-Token or"
            " Authorization), not several",
        )
    if x_admin_token is not None:
        return _admin(context, x_admin_token)
    if x_publisher_token is not None:
        return await _publisher(context, x_publisher_token)
    return decode_customer_jwt(context, _bearer(authorization or ""))


AnyCaller = Annotated[Caller, Depends(get_caller)]


def _forbidden(needed: str) -> Forbidden:
    return Forbidden(message=f"Forbidden: this endpoint takes {needed}")


async def require_admin(caller: AnyCaller) -> Caller:
    if not caller.is_admin:
        raise _forbidden("the admin token (X-Admin-Token)")
    return caller


async def require_publisher_access(
    caller: AnyCaller, publisher_id: PublisherIdPath, context: Ctx
) -> Caller:
    """The admin (for a publisher that exists), or the publisher named in the path with its own
    token."""
    if caller.is_admin:
        if not await admin.publisher_exists(context.db, publisher_id):
            raise NotFound(message=f"Entity not found: publisher {publisher_id}")
        return caller
    if caller.kind == CallerKind.PUBLISHER and caller.publisher_id == publisher_id:
        return caller
    raise _forbidden(f"the admin token or publisher {publisher_id}'s own token")


async def require_publisher(caller: AnyCaller) -> Caller:
    if caller.kind != CallerKind.PUBLISHER:
        raise _forbidden("a publisher token (X-Publisher-Token)")
    return caller


async def require_customer(caller: AnyCaller) -> Caller:
    if caller.kind != CallerKind.CUSTOMER:
        raise _forbidden(
            "a customer JWT (Authorization: Bearer); with a publisher token, read"
            " /3.1/entitlements/customer_id/{customerId}/offer_id/{offerId}"
        )
    return caller


async def require_publisher_or_customer(caller: AnyCaller) -> Caller:
    if caller.kind not in (CallerKind.PUBLISHER, CallerKind.CUSTOMER):
        raise _forbidden("a publisher token (X-Publisher-Token) or a customer JWT")
    return caller


async def require_metrics_token(
    context: Ctx, authorization: Annotated[str | None, Header()] = None
) -> None:
    """/metrics with METRICS_TOKEN set: `Authorization: Bearer <METRICS_TOKEN>`, compared in
    constant time; open when it is unset (docs/api.md §8)."""
    expected = context.settings.metrics_token
    if expected is None:
        return
    if authorization is None or not authorization.strip():
        raise MissingCredentials(
            message="Missing credentials: Authorization: Bearer <METRICS_TOKEN>"
        )
    if not tokens_equal(_bearer(authorization), expected):
        raise InvalidCredentials()


Admin = Annotated[Caller, Depends(require_admin)]
MetricsScraper = Annotated[None, Depends(require_metrics_token)]
PublisherAccess = Annotated[Caller, Depends(require_publisher_access)]
PublisherCaller = Annotated[Caller, Depends(require_publisher)]
CustomerCaller = Annotated[Caller, Depends(require_customer)]
PublisherOrCustomer = Annotated[Caller, Depends(require_publisher_or_customer)]


# What each credential dependency accepts, as OpenAPI security requirements (any one of them;
# `{}`: none needed). The schemes themselves are defined in app/api/openapi.py.
SECURITY: dict[Callable[..., Any], list[dict[str, list[str]]]] = {
    require_admin: [{"adminToken": []}],
    require_publisher_access: [{"adminToken": []}, {"publisherToken": []}],
    require_publisher: [{"publisherToken": []}],
    require_customer: [{"customerJwt": []}],
    require_publisher_or_customer: [{"publisherToken": []}, {"customerJwt": []}],
    require_metrics_token: [{"metricsToken": []}, {}],
}
