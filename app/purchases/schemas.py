"""Bodies and answers of the StoreKit 2 API (docs/api.md §3)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from pydantic import ConfigDict, Field, StrictInt, StringConstraints

from app.enums import SyncKind, SyncResult, SyncStatus
from app.schemas import ApiModel, ApiResponse, BundleId

# ASCII digits only: `\d` would take any script's digits (Arabic-Indic, Devanagari, ...).
TransactionId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


class PurchaseRequest(ApiModel):
    """A purchase to register (or to transfer): whose it is, and Apple's transaction."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cleengCustomerId": 123456789,
                    "transactionId": "2000000123456789",
                    "ipAddress": "203.0.113.7",
                }
            ]
        }
    )

    cleeng_customer_id: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=2**63 - 1,
            description="The customer the purchase is for, one of the publisher's. With a"
            " customer JWT, the token's own customerId.",
        ),
    ]
    transaction_id: Annotated[
        TransactionId,
        Field(description="Apple's StoreKit 2 `Transaction.id`: 1 to 32 ASCII digits."),
    ]
    ip_address: Annotated[
        IPv4Address | IPv6Address | None,
        Field(description="The customer's IP address, IPv4 or IPv6; kept with the sync."),
    ] = None
    # Which of the publisher's apps it was bought in; None: the sync asks each in turn.
    bundle_id: Annotated[
        BundleId | None,
        Field(
            description="Which of the publisher's apps it was bought in; left out, the sync"
            " asks each app in turn until one knows the transaction."
        ),
    ] = None

    def fingerprint(self, kind: SyncKind) -> str:
        """What a replay with the same Correlation-Id must repeat exactly."""
        canonical = {
            "kind": kind.value,
            "cleengCustomerId": self.cleeng_customer_id,
            "transactionId": self.transaction_id,
            "ipAddress": str(self.ip_address) if self.ip_address else None,
        }
        if self.bundle_id is not None:  # absent, the fingerprint is the one stored before apps
            canonical["bundleId"] = self.bundle_id
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class Accepted(ApiResponse):
    """The sync is committed: poll it, or wait for its `inappPurchaseSyncResult` webhook."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"synchronizationId": "7f71d712-1a6c-4ed7-86b1-53640a12e7e7"}]
        }
    )

    synchronization_id: str = Field(
        description="The Correlation-Id when one was sent, else a new UUID."
    )


class SynchronizationAnswer(ApiResponse):
    """A synchronization as it stands. `accessGranted` and `result` appear once it is
    finalized; `offerId` only when the customer is entitled; `correlationId` only when one was
    sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "synchronizationId": "7f71d712-1a6c-4ed7-86b1-53640a12e7e7",
                    "status": "finalized",
                    "transactionId": "2000000123456789",
                    "originalTransactionId": "2000000123450000",
                    "cleengCustomerId": 123456789,
                    "accessGranted": True,
                    "offerId": "S123456789_US",
                    "result": "SUBSCRIPTION_CREATED",
                    "createdAt": "2026-11-22T10:00:00Z",
                    "updatedAt": "2026-11-22T10:00:01Z",
                }
            ]
        }
    )

    synchronization_id: str
    status: SyncStatus = Field(
        description="`processing` (queued or running), `retrying` (after a transient failure:"
        " it runs again), `finalized` (done)."
    )
    transaction_id: str
    original_transaction_id: str | None = Field(
        default=None, description="Apple's originalTransactionId, once Apple has answered."
    )
    cleeng_customer_id: int
    access_granted: bool | None = None
    offer_id: str | None = None
    result: SyncResult | None = Field(
        default=None, description="Why access was or was not granted."
    )
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
