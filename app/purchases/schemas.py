"""Bodies and answers of the StoreKit 2 API (SPEC §3)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints

from app.enums import SyncKind, SyncResult, SyncStatus
from app.schemas import ApiModel, ApiResponse, BundleId

# ASCII digits only: `\d` would take any script's digits (Arabic-Indic, Devanagari, ...).
TransactionId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


class PurchaseRequest(ApiModel):
    cleeng_customer_id: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
    transaction_id: TransactionId
    ip_address: IPv4Address | IPv6Address | None = None
    # Which of the publisher's apps it was bought in; None: the sync asks each in turn.
    bundle_id: BundleId | None = None

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
    synchronization_id: str


class SynchronizationAnswer(ApiResponse):
    synchronization_id: str
    status: SyncStatus
    transaction_id: str
    original_transaction_id: str | None = None
    cleeng_customer_id: int
    access_granted: bool | None = None
    offer_id: str | None = None
    result: SyncResult | None = None
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
