"""Who is signed in to the console, and the proof each form carries.

Signing in takes the admin token (every publisher) or a publisher token (its own): checked as the
API checks them, so a wrong one costs what a refused API call does, and each client address gets a
few wrong ones per quarter hour (`SignInLimiter`). The session is a signed cookie (`SessionSigner`):
`HttpOnly`, `SameSite=Strict`, `Secure` (and `__Host-`) when the page came over https, expiring
with the session. It carries the kind, the publisher, a keyed fingerprint of the credential (checked
on every request, so a changed admin token or a revoked publisher token ends it) and the session's
CSRF token, which every form posts back and which is compared in constant time. The sign-in form
has its own short-lived CSRF cookie, so that nobody can sign a browser in behind its user's back.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request, Response

from app.console import repository
from app.context import Context
from app.security import hash_token, tokens_equal
from app.sessions import client_key

log = logging.getLogger("app.console")

SESSION_SECONDS = 8 * 3600
LOGIN_SECONDS = 3600
MAX_FORM_FIELDS = 20
ADMIN, PUBLISHER = "admin", "publisher"


@dataclass(frozen=True)
class Session:
    kind: str
    publisher_id: int | None  # None: the admin, every publisher
    csrf: str
    expires: int

    @property
    def is_admin(self) -> bool:
        return self.kind == ADMIN

    def sees(self, publisher_id: int) -> bool:
        return self.is_admin or self.publisher_id == publisher_id


def secure(request: Request) -> bool:
    """Over https, as the client sees it (uvicorn sets the scheme from X-Forwarded-Proto only
    for the proxies it trusts)."""
    return request.url.scheme == "https"


def cookie_name(request: Request, base: str) -> str:
    return f"__Host-{base}" if secure(request) else base


def _set_cookie(request: Request, response: Response, base: str, value: str, age: int) -> None:
    https = secure(request)
    response.set_cookie(
        cookie_name(request, base),
        value,
        max_age=age,
        path="/" if https else "/console",
        secure=https,
        httponly=True,
        samesite="strict",
    )


def _clear_cookie(request: Request, response: Response, base: str) -> None:
    https = secure(request)
    response.delete_cookie(
        cookie_name(request, base),
        path="/" if https else "/console",
        secure=https,
        httponly=True,
        samesite="strict",
    )


SESSION_COOKIE, LOGIN_COOKIE = "storekit_console", "storekit_console_login"


async def _credential_valid(context: Context, claims: dict[str, object]) -> bool:
    mark = claims.get("cred")
    if not isinstance(mark, str):
        return False
    if claims.get("kind") == ADMIN:
        token = context.settings.admin_token
        return token is not None and hmac.compare_digest(mark, context.sessions.credential(token))
    publisher_id = claims.get("pid")
    if claims.get("kind") != PUBLISHER or type(publisher_id) is not int:
        return False
    hashes = await repository.token_hashes(context.db, publisher_id)
    marks = [context.sessions.fingerprint(digest) for digest in hashes]
    return any(hmac.compare_digest(mark, known) for known in marks)


async def current(request: Request, context: Context) -> Session | None:
    """The session of a valid cookie whose credential still holds, or None."""
    token = request.cookies.get(cookie_name(request, SESSION_COOKIE))
    if not token:
        return None
    claims = context.sessions.open(token, context.clock.now())
    if claims is None or not await _credential_valid(context, claims):
        return None
    csrf, expires, pid = claims.get("csrf"), claims.get("exp"), claims.get("pid")
    if not isinstance(csrf, str) or not isinstance(expires, int):
        return None
    return Session(str(claims["kind"]), pid if type(pid) is int else None, csrf, expires)


@dataclass(frozen=True)
class SignedIn:
    kind: str
    publisher_id: int | None
    credential: str  # the keyed fingerprint, never the token


async def check_token(context: Context, token: str) -> SignedIn | None:
    """The admin token or a publisher token, checked as the API checks them."""
    admin = context.settings.admin_token
    if admin is not None and tokens_equal(token, admin):
        return SignedIn(ADMIN, None, context.sessions.credential(token))
    publisher_id = await context.tokens.publisher_of(token)
    if publisher_id is None:
        return None
    return SignedIn(PUBLISHER, publisher_id, context.sessions.fingerprint(hash_token(token)))


def start(request: Request, response: Response, context: Context, who: SignedIn) -> None:
    now = int(context.clock.now().timestamp())
    claims = {
        "v": 1,
        "kind": who.kind,
        "pid": who.publisher_id,
        "cred": who.credential,
        "csrf": secrets.token_urlsafe(32),
        "iat": now,
        "exp": now + SESSION_SECONDS,
    }
    _set_cookie(request, response, SESSION_COOKIE, context.sessions.sign(claims), SESSION_SECONDS)
    _clear_cookie(request, response, LOGIN_COOKIE)


def end(request: Request, response: Response) -> None:
    _clear_cookie(request, response, SESSION_COOKIE)


def login_csrf(context: Context) -> tuple[str, str]:
    """The sign-in form's CSRF token, and the signed cookie that holds it (there is no session
    yet to hold it)."""
    token = secrets.token_urlsafe(32)
    expires = int(context.clock.now().timestamp()) + LOGIN_SECONDS
    return token, context.sessions.sign({"v": 1, "login": token, "exp": expires})


def keep_login_csrf(request: Request, response: Response, signed: str) -> None:
    _set_cookie(request, response, LOGIN_COOKIE, signed, LOGIN_SECONDS)


def login_csrf_valid(request: Request, context: Context, given: str) -> bool:
    cookie = request.cookies.get(cookie_name(request, LOGIN_COOKIE))
    claims = context.sessions.open(cookie, context.clock.now()) if cookie else None
    expected = claims.get("login") if claims else None
    return (
        isinstance(expected, str)
        and bool(given)
        and hmac.compare_digest(given.encode(), expected.encode())  # str: ASCII only
    )


def csrf_valid(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def cross_site(request: Request) -> bool:
    """A browser says the form came from another site (Fetch Metadata): refused whatever else."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


async def form(request: Request) -> dict[str, str]:
    """A posted urlencoded form: one value per field, the first."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        return {}
    return {name: values[0] for name, values in fields.items()}


def client(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


def log_sign_in(who: SignedIn | None, request: Request) -> None:
    fields: dict[str, object] = {"client": client(request)}
    if who is None:
        log.warning("console sign-in refused", extra={"fields": fields})
        return
    fields |= {"kind": who.kind, "publisherId": who.publisher_id}
    log.info("console sign-in", extra={"fields": fields})
