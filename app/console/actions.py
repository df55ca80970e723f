"""Signing in and out, and the actions: each asks for confirmation on a page of its own, then posts
a form that carries the session's CSRF token, and shows its outcome where the work appears."""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from app.api.deps import Ctx
from app.console import auth, repository, service
from app.console.auth import Session
from app.console.pages import (
    DeliveryId,
    Original,
    PublisherId,
    not_found,
    refusal_status,
    said,
    signed_in,
    to_login,
    view,
)
from app.console.search import sync_href
from app.console.web import PREFIX, page, redirect, stylesheet
from app.context import Context
from app.errors import CleengError

router = APIRouter()
log = logging.getLogger("app.console")

FORM_EXPIRED = (
    "This form has expired, or did not come from this console. Go back, reload the page and try"
    " again."
)


@router.get("/static/console.css")
async def console_css() -> Response:
    return stylesheet()


def _login_page(
    request: Request, context: Context, status: int = 200, problem: str | None = None
) -> Response:
    csrf, signed = auth.login_csrf(context)
    response = page("login.html", status, title="Sign in", session=None, problem=problem, csrf=csrf)
    auth.keep_login_csrf(request, response, signed)
    return response


@router.get("/login")
async def login_form(request: Request, context: Ctx) -> Response:
    if await signed_in(request, context) is not None:
        return redirect(PREFIX)
    return _login_page(request, context)


@router.post("/login")
async def login(request: Request, context: Ctx) -> Response:
    client, now = auth.client(request), context.clock.now()
    wait = context.sign_ins.retry_after(client, now)
    if wait is not None:
        text = f"Too many failed sign-ins from your address: try again in {wait} s."
        return page(
            "message.html",
            429,
            {"Retry-After": str(wait)},
            title="Too many attempts",
            session=None,
            heading="Too many attempts",
            text=text,
        )
    fields = await auth.form(request)
    if auth.cross_site(request) or not auth.login_csrf_valid(
        request, context, fields.get("csrf", "")
    ):
        return _login_page(request, context, 403, FORM_EXPIRED)
    token = fields.get("token", "").strip()
    who = await auth.check_token(context, token) if token else None
    auth.log_sign_in(who, request)
    if who is None:
        context.sign_ins.failed(client, now)
        return _login_page(request, context, 401, "That token was not accepted.")
    context.sign_ins.succeeded(client)
    response = redirect(PREFIX)
    auth.start(request, response, context, who)
    return response


async def _posted(request: Request, context: Context) -> tuple[Session | None, Response | None]:
    """The session of a form posted from the console, or the answer when there is none."""
    session = await signed_in(request, context)
    if session is None:
        return None, to_login()
    fields = await auth.form(request)
    if auth.cross_site(request) or not auth.csrf_valid(session, fields.get("csrf", "")):
        return None, view(
            "message.html", session, "", "Refused", 403, heading="Refused", text=FORM_EXPIRED
        )
    return session, None


@router.post("/logout")
async def logout(request: Request, context: Ctx) -> Response:
    session, refused = await _posted(request, context)
    if session is None:
        assert refused is not None
        return refused
    response = redirect(f"{PREFIX}/login")
    auth.end(request, response)
    return response


# Replay a delivery ----------------------------------------------------------------------------


@router.get("/publishers/{publisherId}/deliveries/{deliveryId}/replay")
async def confirm_replay(
    request: Request, context: Ctx, publisher_id: PublisherId, delivery_id: DeliveryId
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    row = (
        await repository.delivery(context.db, publisher_id, delivery_id)
        if session.sees(publisher_id)
        else None
    )
    if row is None:
        return not_found(session, f"There is no webhook delivery {delivery_id} you may see.")
    return view(
        "confirm.html",
        session,
        "search",
        "Replay a delivery",
        action="replay",
        delivery=row,
        publisher_id=publisher_id,
        back=f"{PREFIX}/publishers/{publisher_id}/deliveries/{delivery_id}",
    )


@router.post("/publishers/{publisherId}/deliveries/{deliveryId}/replay")
async def replay(
    request: Request,
    context: Ctx,
    after: BackgroundTasks,
    publisher_id: PublisherId,
    delivery_id: DeliveryId,
) -> Response:
    session, refused = await _posted(request, context)
    if session is None:
        assert refused is not None
        return refused
    if not session.sees(publisher_id):
        return not_found(session, f"There is no webhook delivery {delivery_id} you may see.")
    try:
        async with context.db.transaction() as tx:
            await service.replay(tx, publisher_id, delivery_id, context.clock.now())
    except CleengError:
        return not_found(session, f"There is no webhook delivery {delivery_id} you may see.")
    after.add_task(context.waker.poke)  # committed: the workers may take it now
    log.info("console replayed a delivery", extra={"fields": {"deliveryId": delivery_id}})
    location = f"{PREFIX}/publishers/{publisher_id}/deliveries/{delivery_id}?done=replayed"
    return redirect(location)


# Re-sync a purchase ---------------------------------------------------------------------------


@router.get("/publishers/{publisherId}/purchases/{originalTransactionId}/resync")
async def confirm_resync(
    request: Request, context: Ctx, publisher_id: PublisherId, original: Original
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    target = (
        await service.resync_target(context.db, publisher_id, original)
        if session.sees(publisher_id)
        else None
    )
    if target is None:
        return not_found(session, f"There is no purchase {original} you may see.")
    return view(
        "confirm.html",
        session,
        "search",
        "Re-sync a purchase",
        action="resync",
        target=target,
        publisher_id=publisher_id,
        back=f"{PREFIX}/publishers/{publisher_id}/purchases/{original}",
    )


@router.post("/publishers/{publisherId}/purchases/{originalTransactionId}/resync")
async def resync(
    request: Request, context: Ctx, publisher_id: PublisherId, original: Original
) -> Response:
    session, refused = await _posted(request, context)
    if session is None:
        assert refused is not None
        return refused
    target = (
        await service.resync_target(context.db, publisher_id, original)
        if session.sees(publisher_id)
        else None
    )
    if target is None:
        return not_found(session, f"There is no purchase {original} you may see.")
    try:
        sync_id = await service.resync(context.db, target, context.clock.now())
    except CleengError as error:
        return view(
            "confirm.html",
            session,
            "search",
            "Re-sync a purchase",
            refusal_status(error),
            action="resync",
            target=target,
            publisher_id=publisher_id,
            problem=f"{error.message} ({error.code})",
            back=f"{PREFIX}/publishers/{publisher_id}/purchases/{original}",
        )
    context.waker.poke()  # committed by the register's one statement
    log.info("console re-synced a purchase", extra={"fields": {"synchronizationId": sync_id}})
    return redirect(f"{sync_href(publisher_id, sync_id)}?done=resynced")


# Send a test notification ---------------------------------------------------------------------


async def _confirm_test(
    session: Session, context: Context, publisher_id: int, status: int = 200, problem: str = ""
) -> Response:
    return view(
        "confirm.html",
        session,
        "publishers",
        "Send a test notification",
        status,
        action="test",
        apps=await repository.apps(context.db, publisher_id),
        publisher_id=publisher_id,
        problem=problem or None,
        back=f"{PREFIX}/publishers/{publisher_id}",
    )


@router.get("/publishers/{publisherId}/test-notification")
async def confirm_test(request: Request, context: Ctx, publisher_id: PublisherId) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    if (
        not session.sees(publisher_id)
        or await repository.publisher(context.db, publisher_id) is None
    ):
        return not_found(session, f"There is no publisher {publisher_id} you may see.")
    return await _confirm_test(session, context, publisher_id)


@router.post("/publishers/{publisherId}/test-notification")
async def send_test(request: Request, context: Ctx, publisher_id: PublisherId) -> Response:
    session, refused = await _posted(request, context)
    if session is None:
        assert refused is not None
        return refused
    if not session.sees(publisher_id):
        return not_found(session, f"There is no publisher {publisher_id} you may see.")
    bundle_id = (await auth.form(request)).get("bundleId") or None
    try:
        token = await service.request_test(context, publisher_id, bundle_id)
    except CleengError as error:
        status = refusal_status(error)
        return await _confirm_test(session, context, publisher_id, status, said(error))
    log.info("console requested a test notification", extra={"fields": {"bundleId": bundle_id}})
    return redirect(f"{PREFIX}/publishers/{publisher_id}/test-notifications/{token}?done=requested")
