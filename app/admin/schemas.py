"""Provisioning bodies and answers (docs/api.md §7)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.enums import Ownership
from app.schemas import ApiModel, ApiResponse, BundleId

OFFER_ID_PATTERN = r"^[SPEAR][1-9][0-9]{8}_[A-Z]{2}$"  # ASCII digits only
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PRODUCT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"

Environment = Literal["Production", "Sandbox", "Auto"]
ProductId = Annotated[str, StringConstraints(pattern=PRODUCT_ID_PATTERN)]


class PublisherCreate(ApiModel):
    """A new publisher (the operator's, with the admin token)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Acme TV"}]})

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class PublisherCreated(ApiResponse):
    publisher_id: int
    name: str
    publisher_token: str


class PublisherTokenCreated(ApiResponse):
    token_id: UUID
    publisher_token: str
    created_at: datetime


class PublisherTokenItem(ApiResponse):
    token_id: UUID
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="when it was last used, to the minute (written at most once a minute)"
    )


class PublisherTokenList(ApiResponse):
    items: list[PublisherTokenItem]


APP_EXAMPLE: dict[str, JsonValue] = {
    "bundleId": "com.acme.tv",
    "appAppleId": 1234567890,
    "issuerId": "57246542-96fe-1a63-e053-0824d011072a",
    "keyId": "ABC123DEFG",
    "privateKey": "-----BEGIN PRIVATE KEY-----\n…\n-----END PRIVATE KEY-----\n",
    "environment": "Production",
    "ownership": "transfer",
}


class AppConfig(ApiModel):
    """One app and its In-App Purchase key from App Store Connect: `PUT …/storekit2/apps/{bundleId}`
    (the body's bundleId, when given, must be the path's) and `PUT …/storekit2` (the body names
    the app)."""

    model_config = ConfigDict(json_schema_extra={"examples": [APP_EXAMPLE]})

    bundle_id: BundleId | None = None
    app_apple_id: Annotated[
        int | None,
        Field(
            ge=1,
            le=2**63 - 1,
            description="The app's Apple ID (App Store Connect); required unless the"
            " environment is Sandbox.",
        ),
    ] = None
    issuer_id: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$"),
        Field(description="The In-App Purchase key's issuer id (App Store Connect)."),
    ]
    key_id: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Z0-9]{10}$"),
        Field(description="The In-App Purchase key's id: 10 capital letters and digits."),
    ]
    private_key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=8192,
            repr=False,
            description="The key's .p8 file as it is: an unencrypted EC P-256 PEM. Stored"
            " sealed, never returned.",
        ),
    ]
    environment: Environment = Field(
        description="`Production`, `Sandbox`, or `Auto`: Production first, Sandbox when"
        " Production answers 4040010 or 401 (TestFlight and review builds)."
    )
    # The publisher's policy for all its apps; left out, it stays as it is.
    ownership: Ownership | None = Field(
        default=None,
        description="The publisher's ownership policy for all its apps, `transfer` (the"
        " default) or `appAccountToken`; left out, it stays as it is.",
    )

    @field_validator("private_key")
    @classmethod
    def _p256(cls, value: str) -> str:
        try:
            key = load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("must be an unencrypted PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("must be an EC P-256 key (App Store Connect's .p8)")
        return value

    @model_validator(mode="after")
    def _production_needs_app_id(self) -> AppConfig:
        if self.environment != "Sandbox" and self.app_apple_id is None:
            raise ValueError("appAppleId is required unless the environment is Sandbox")
        return self


class StoreKit2Config(AppConfig):
    """`PUT …/storekit2`: the app its bundleId names, added or replaced, and its In-App
    Purchase key from App Store Connect."""

    bundle_id: BundleId


class StoreKit2Answer(ApiResponse):
    """One app as it was put, and the integration's state: never the private key."""

    publisher_id: int
    bundle_id: str
    app_apple_id: int | None
    issuer_id: str
    key_id: str
    environment: Environment
    active: bool
    ownership: Ownership
    created_at: datetime
    updated_at: datetime


class AppAnswer(ApiResponse):
    bundle_id: str
    app_apple_id: int | None
    issuer_id: str
    key_id: str
    environment: Environment
    created_at: datetime


class StoreKit2Overview(ApiResponse):
    """`GET …/storekit2`: the integration and its apps, oldest first."""

    active: bool
    ownership: Ownership
    apps: list[AppAnswer]


class OfferPut(ApiModel):
    """An offer and the Apple products that grant it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"title": "Pro monthly", "productIds": ["com.acme.tv.pro.monthly"]}]
        }
    )

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    product_ids: Annotated[
        list[ProductId],
        Field(
            min_length=1,
            max_length=100,
            description="Apple product ids (1 to 100, each mapped to one offer only).",
        ),
    ]

    @field_validator("product_ids")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("product ids must not repeat")
        return value


class OfferAnswer(ApiResponse):
    offer_id: str
    title: str
    product_ids: list[str]


class OfferList(ApiResponse):
    items: list[OfferAnswer]


class CustomerCreate(ApiModel):
    """A customer of the publisher; email and externalId are each unique to the publisher."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "a@example.com", "externalId": "crm-42"}]}
    )

    email: Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=320)]
    external_id: Annotated[
        str | None,
        StringConstraints(min_length=1, max_length=256),
        Field(description="The publisher's own id for the customer, optional."),
    ] = None


class CustomerAnswer(ApiResponse):
    customer_id: int
    email: str
    external_id: str | None
    app_account_token: UUID  # what the customer's app passes to StoreKit (docs/api.md §3)
    created_at: datetime


class TokenAnswer(ApiResponse):
    jwt: str
    expires_at: datetime


def is_offer_id(value: str) -> bool:
    return re.fullmatch(OFFER_ID_PATTERN, value) is not None
