"""The console's pages: thin handlers that find the session, read, and render.

A page of a publisher that is not the session's answers 404, as the API does; a request without a
valid session is sent to the sign-in page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from app.api.deps import Ctx, Tx
from app.console import auth, overview, repository, search, service, timeline
from app.console.auth import Session
from app.console.readable import payload, sync_sections
from app.console.search import LABELS, Looking
from app.console.web import PREFIX, page, redirect
from app.context import Context
from app.errors import CleengError, IntegrationNotActive

router = APIRouter()

MAX_ID = 2**63 - 1
PublisherId = Annotated[int, Path(alias="publisherId", ge=1, le=MAX_ID)]
CustomerId = Annotated[int, Path(alias="customerId", ge=1, le=MAX_ID)]
DeliveryId = Annotated[int, Path(alias="deliveryId", ge=1, le=MAX_ID)]
Original = Annotated[str, Path(alias="originalTransactionId", min_length=1, max_length=32)]
SyncId = Annotated[str, Path(alias="synchronizationId", min_length=1, max_length=256)]
TestToken = Annotated[
    str, Path(alias="token", min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:-]+$")
]

OUTCOMES = {
    "replayed": (
        "ok",
        "The delivery is due again now, on a fresh schedule: its attempts appear"
        " below as they are made.",
    ),
    "resynced": (
        "ok",
        "The purchase is being synchronized again: this sync finalizes once Apple has answered.",
    ),
    "requested": (
        "ok",
        "Apple took the request: it posts the TEST notification within a minute or so. Reload"
        " this page to see its attempts, and whether this service received it.",
    ),
}


def to_login() -> Response:
    return redirect(f"{PREFIX}/login")


def who(session: Session) -> str:
    return (
        "the operator (every publisher)"
        if session.is_admin
        else f"publisher {session.publisher_id}"
    )


def view(
    template: str, session: Session, nav: str, title: str, status: int = 200, **values: Any
) -> Response:
    return page(template, status, session=session, who=who(session), nav=nav, title=title, **values)


def not_found(session: Session, what: str) -> Response:
    return view("message.html", session, "", "Not found", 404, heading="Not found", text=what)


# A refusal of the API whose contract's status is a 500 although the service did not fail: the
# console answers it as what it is (the publisher has no active app: a conflict with its state).
REFUSALS: dict[type[CleengError], int] = {IntegrationNotActive: 409}


def refusal_status(error: CleengError) -> int:
    """The console page's status for `error`: its API status, but a 4xx for a refusal that is
    not the service's fault (503 stays 503)."""
    return next((s for kind, s in REFUSALS.items() if isinstance(error, kind)), error.status)


def said(error: CleengError) -> str:
    """A refusal as the console shows it: the envelope's message and code, and what each detail
    says."""
    problems = "; ".join(d.problem for d in error.details)
    return f"{error.message} ({error.code})" + (f": {problems}" if problems else "")


def outcome(code: str | None) -> dict[str, str] | None:
    if code not in OUTCOMES:
        return None
    kind, text = OUTCOMES[code]
    return {"kind": kind, "text": text}


async def signed_in(request: Request, context: Context) -> Session | None:
    return await auth.current(request, context)


@router.get("")
async def home(
    request: Request,
    context: Ctx,
    range_name: Annotated[str, Query(alias="range")] = "hour",
    publisher: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    span = overview.RANGES.get(range_name, overview.RANGES["hour"])
    scope = publisher if session.is_admin else session.publisher_id
    if scope is not None and await repository.publisher(context.db, scope) is None:
        return not_found(session, f"There is no publisher {scope}.")
    found = await overview.overview(context.db, scope, span, context.clock.now())
    return view(
        "overview.html",
        session,
        "overview",
        "Overview",
        overview=found,
        ranges=overview.RANGES,
        scope=scope,
        publishers=await repository.publishers(context.db) if session.is_admin else [],
    )


@router.get("/search")
async def find(
    request: Request,
    context: Ctx,
    q: Annotated[str, Query(max_length=search.MAX_TERM)] = "",
    kind: Annotated[Looking, Query()] = Looking.ANY,
    publisher: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    scope = publisher if session.is_admin else session.publisher_id
    hits = await search.search(context.db, q, kind, scope) if q.strip() else []
    if len(hits) == 1:
        return redirect(hits[0].href)
    return view(
        "search.html",
        session,
        "search",
        "Search",
        q=q,
        kind=kind,
        labels=LABELS,
        hits=hits,
        scope=publisher if session.is_admin else None,
    )


@router.get("/publishers")
async def publishers(request: Request, context: Ctx) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    if not session.is_admin:
        return redirect(f"{PREFIX}/publishers/{session.publisher_id}")
    rows = await repository.publishers(context.db)
    return view("publishers.html", session, "publishers", "Publishers", publishers=rows)


@router.get("/publishers/{publisherId}")
async def publisher(request: Request, context: Ctx, publisher_id: PublisherId) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    row = (
        await repository.publisher(context.db, publisher_id) if session.sees(publisher_id) else None
    )
    if row is None:
        return not_found(session, f"There is no publisher {publisher_id} you may see.")
    endpoints = await repository.endpoints(context.db, publisher_id)
    return view(
        "publisher.html",
        session,
        "publishers",
        f"Publisher {row['name']}",
        publisher=row,
        apps=await repository.apps(context.db, publisher_id),
        endpoints=endpoints,
    )


@router.get("/customers/{customerId}")
async def customer(request: Request, context: Ctx, tx: Tx, customer_id: CustomerId) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    row = await repository.customer(tx, customer_id, session.publisher_id)
    if row is None:
        return not_found(session, f"There is no customer {customer_id} you may see.")
    story = await timeline.of_customer(tx, row["publisher_id"], customer_id)
    return view(
        "customer.html",
        session,
        "search",
        f"Customer {customer_id}",
        customer=row,
        timeline=story,
        publisher_id=row["publisher_id"],
    )


@router.get("/publishers/{publisherId}/purchases/{originalTransactionId}")
async def purchase(
    request: Request, context: Ctx, tx: Tx, publisher_id: PublisherId, original: Original
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    story = (
        await timeline.of_purchase(tx, publisher_id, original)
        if session.sees(publisher_id)
        else None
    )
    if story is None or not story.entries:
        return not_found(session, f"There is no purchase {original} you may see.")
    return view(
        "purchase.html",
        session,
        "search",
        f"Purchase {original}",
        original=original,
        timeline=story,
        publisher_id=publisher_id,
    )


@router.get("/publishers/{publisherId}/syncs/{synchronizationId:path}")
async def sync(
    request: Request,
    context: Ctx,
    tx: Tx,
    publisher_id: PublisherId,
    sync_id: SyncId,
    done: Annotated[str | None, Query()] = None,
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    row = await repository.sync(tx, publisher_id, sync_id) if session.sees(publisher_id) else None
    if row is None:
        return not_found(session, f"There is no synchronization {sync_id} you may see.")
    events = await timeline.of_sync(tx, row)
    return view(
        "sync.html",
        session,
        "search",
        f"Sync {sync_id}",
        sync=row,
        sections=sync_sections(row["apple_data"]),
        events=events,
        publisher_id=publisher_id,
        notice=outcome(done),
    )


@router.get("/publishers/{publisherId}/deliveries/{deliveryId}")
async def delivery(
    request: Request,
    context: Ctx,
    tx: Tx,
    publisher_id: PublisherId,
    delivery_id: DeliveryId,
    done: Annotated[str | None, Query()] = None,
) -> Response:
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    row = (
        await repository.delivery(tx, publisher_id, delivery_id)
        if session.sees(publisher_id)
        else None
    )
    if row is None:
        return not_found(session, f"There is no webhook delivery {delivery_id} you may see.")
    attempts = await repository.attempts(tx, [delivery_id], repository.DELIVERY_ATTEMPT_LIMIT)
    return view(
        "delivery.html",
        session,
        "search",
        f"Delivery {delivery_id}",
        delivery=row,
        attempts=attempts,
        data=payload(row["payload"]),
        publisher_id=publisher_id,
        notice=outcome(done),
    )


@router.get("/publishers/{publisherId}/test-notifications/{token}")
async def notification_probe(
    request: Request,
    context: Ctx,
    publisher_id: PublisherId,
    token: TestToken,
    done: Annotated[str | None, Query()] = None,
) -> Response:
    """Apple's attempts to post a test notification, and whether this service received it: asked
    of Apple each time the page is shown."""
    session = await signed_in(request, context)
    if session is None:
        return to_login()
    if not session.sees(publisher_id):
        return not_found(session, f"There is no test notification {token} you may see.")
    try:
        found = await service.test_status(context, publisher_id, token)
    except CleengError as error:
        return view(
            "message.html",
            session,
            "publishers",
            "Test notification",
            refusal_status(error),
            heading="Test notification",
            text=said(error),
        )
    return view(
        "test_notification.html",
        session,
        "publishers",
        "Test notification",
        probe=found,
        publisher_id=publisher_id,
        notice=outcome(done),
    )
