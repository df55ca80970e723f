"""What Apple signed, for people: names spelled out, dates as dates, codes with their meaning."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Apple's codes, as its App Store Server API documents them.
MEANINGS: dict[str, dict[int, str]] = {
    "status": {
        1: "active",
        2: "expired",
        3: "in billing retry",
        4: "in billing grace period",
        5: "revoked",
    },
    "autoRenewStatus": {0: "off", 1: "on"},
    "expirationIntent": {
        1: "the customer cancelled",
        2: "a billing error",
        3: "no consent to a price increase",
        4: "the product was not available",
        5: "another reason",
    },
    "offerType": {
        1: "introductory offer",
        2: "promotional offer",
        3: "offer code",
        4: "win-back offer",
    },
    "revocationReason": {0: "another reason", 1: "an issue in the app"},
    "priceIncreaseStatus": {0: "not responded yet", 1: "consented"},
}
MILLIUNITS = 1000  # Apple's prices are in thousandths of the currency's unit


@dataclass(frozen=True)
class Field:
    name: str  # Apple's own
    label: str  # for people
    text: str
    when: datetime | None = None  # set when the value is a date


@dataclass(frozen=True)
class Section:
    title: str
    fields: list[Field]


def label_of(name: str) -> str:
    """`originalTransactionId` → `Original transaction ID`."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).split()
    spelled = [w.upper() if w.lower() in ("id", "uuid", "url") else w.lower() for w in words]
    text = " ".join(spelled)
    return text[:1].upper() + text[1:]


def when(millis: object) -> datetime | None:
    if isinstance(millis, int | float) and not isinstance(millis, bool):
        try:
            return datetime.fromtimestamp(millis / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _text(name: str, value: Any, claims: dict[str, Any]) -> tuple[str, datetime | None]:
    if name.endswith("Date") and (moment := when(value)) is not None:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC"), moment
    meaning = MEANINGS.get(name, {}).get(value) if isinstance(value, int) else None
    if meaning is not None:
        return f"{value} ({meaning})", None
    if name == "price" and isinstance(value, int):
        currency = claims.get("currency")
        amount = f"{value / MILLIUNITS:.2f}"
        return f"{amount} {currency}" if isinstance(currency, str) else amount, None
    if isinstance(value, str):
        return value, None
    return json.dumps(value, ensure_ascii=False), None


def fields(claims: dict[str, Any]) -> list[Field]:
    """Every claim, in Apple's order."""
    shown = []
    for name, value in claims.items():
        text, moment = _text(name, value, claims)
        shown.append(Field(name, label_of(name), text, moment))
    return shown


def _object(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def sync_sections(apple_data: object) -> list[Section]:
    """What Apple said to a sync (`synchronizations.apple_data`)."""
    said = _object(apple_data)
    if not said:
        return []
    sections = []
    for key, title in (
        ("transaction", "The transaction"),
        ("latestTransaction", "The latest transaction"),
        ("renewalInfo", "Renewal info"),
    ):
        claims = _object(said.get(key))
        if claims:
            sections.append(Section(title, fields(claims)))
    if isinstance(said.get("status"), int):
        sections.append(Section("Subscription status", fields({"status": said["status"]})))
    return sections


def notification_sections(
    transaction: object, renewal: object, apple_status: int | None
) -> list[Section]:
    """What Apple said in a notification."""
    sections = []
    for value, title in ((transaction, "The transaction"), (renewal, "Renewal info")):
        claims = _object(value)
        if claims:
            sections.append(Section(title, fields(claims)))
    if apple_status is not None:
        sections.append(Section("Subscription status", fields({"status": apple_status})))
    return sections


def payload(value: object) -> str:
    """A webhook event's data, indented for reading."""
    data = _object(value)
    return json.dumps(data if data is not None else value, indent=2, ensure_ascii=False)
