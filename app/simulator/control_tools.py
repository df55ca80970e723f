"""Control API, part two: notifications, faults, the root certificate, reset (``/sim``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from app.simulator.deps import NotifierDep, State
from app.simulator.errors import ErrorCode
from app.simulator.faults import Fault, FaultKind
from app.simulator.notifications import deliver
from app.simulator.schemas import Delivery, FaultCreate, FaultOut, NotificationOut
from app.simulator.views import fault_out, notification_out

router = APIRouter(prefix="/sim", tags=["simulator"])


@router.get("/calls")
async def list_calls(request: Request) -> dict[str, object]:
    """The calls to Apple's API since the simulator started (or `DELETE /sim/calls`), by
    operation and answer."""
    counts: dict[tuple[str, str, int], int] = request.app.state.calls
    calls = [
        {"method": m, "route": r, "status": s, "count": n}
        for (m, r, s), n in sorted(counts.items())
    ]
    return {"calls": calls, "total": sum(counts.values())}


@router.delete("/calls", status_code=204)
async def reset_calls(request: Request) -> Response:
    request.app.state.calls.clear()
    return Response(status_code=204)


@router.get("/notifications")
async def list_notifications(
    state: State, bundle_id: Annotated[str | None, Query(alias="bundleId")] = None
) -> list[NotificationOut]:
    """Every notification sent, oldest first, with its delivery attempts."""
    records = state.notifications.values()
    return [notification_out(r) for r in records if bundle_id in (None, r.bundle_id)]


@router.post("/notifications/{notification_uuid}/resend")
async def resend_notification(
    notification_uuid: str, state: State, notifier: NotifierDep, body: Delivery | None = None
) -> NotificationOut:
    """Post the same signed payload again (same ``notificationUUID``), as Apple's retries do:
    one more send attempt in its history (``failDelivery``: a failed one, without posting)."""
    record = state.notifications.get(notification_uuid)
    if record is None:
        raise HTTPException(404, f"no notification {notification_uuid}")
    await deliver(state, notifier, record, (body or Delivery()).fail_delivery)
    return notification_out(record)


def _not_found_code(body: FaultCreate) -> int | None:
    """`errorCode` is for `not_found` only, and must be one of Apple's 404 codes."""
    if body.error_code is None:
        return None
    codes = {int(c) for c in ErrorCode if c.http_status == 404}
    if body.kind is not FaultKind.NOT_FOUND or body.error_code not in codes:
        raise HTTPException(422, f"errorCode goes with not_found, one of {sorted(codes)}")
    return body.error_code


@router.post("/faults", status_code=201)
async def add_fault(body: FaultCreate, state: State) -> FaultOut:
    """Make Apple's paths fail: all calls, or only those about one purchase; a share; n times."""
    fault = Fault(
        fault_id=state.faults.new_id(),
        kind=body.kind,
        transaction_id=body.transaction_id,
        share=body.share,
        times=body.times,
        delay_seconds=body.delay_seconds,
        retry_after_ms=body.retry_after_ms,
        error_code=_not_found_code(body),
    )
    state.faults.add(fault)
    return fault_out(fault)


@router.get("/faults")
async def list_faults(state: State) -> list[FaultOut]:
    return [fault_out(f) for f in state.faults.all()]


@router.delete("/faults", status_code=204)
async def clear_faults(state: State) -> None:
    state.faults.clear()


@router.delete("/faults/{fault_id}", status_code=204)
async def remove_fault(fault_id: str, state: State) -> None:
    if not state.faults.remove(fault_id):
        raise HTTPException(404, f"no fault {fault_id}")


@router.get("/root.der", response_class=Response)
async def root_der(state: State) -> Response:
    """The root certificate to trust (``APPLE_ROOT_CERTIFICATES``), DER."""
    return Response(state.chain.root_der, media_type="application/pkix-cert")


@router.get("/root.pem", response_class=Response)
async def root_pem(state: State) -> Response:
    return Response(state.chain.root_pem, media_type="application/x-pem-file")


@router.post("/reset", status_code=204)
async def reset(state: State) -> None:
    """Forget apps, purchases, faults and notifications; the certificate chain stays."""
    state.reset()
