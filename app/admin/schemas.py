"""Provisioning bodies and answers (SPEC §7)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, StringConstraints, field_validator, model_validator

from app.enums import Ownership
from app.schemas import ApiModel, ApiResponse, BundleId

OFFER_ID_PATTERN = r"^[SPEAR][1-9][0-9]{8}_[A-Z]{2}$"  # ASCII digits only
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PRODUCT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"

Environment = Literal["Production", "Sandbox", "Auto"]
ProductId = Annotated[str, StringConstraints(pattern=PRODUCT_ID_PATTERN)]


class PublisherCreate(ApiModel):
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


class AppConfig(ApiModel):
    """One app: `PUT …/storekit2/apps/{bundleId}` (the body's bundleId, when given, must be the
    path's) and `PUT …/storekit2` (the body names the app)."""

    bundle_id: BundleId | None = None
    app_apple_id: Annotated[int | None, Field(ge=1, le=2**63 - 1)] = None
    issuer_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
    key_id: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{10}$")]
    private_key: Annotated[str, Field(min_length=1, max_length=8192, repr=False)]
    environment: Environment
    # The publisher's policy for all its apps (SPEC §3); left out, it stays as it is.
    ownership: Ownership | None = None

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
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    product_ids: Annotated[list[ProductId], Field(min_length=1, max_length=100)]

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
    email: Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=320)]
    external_id: Annotated[str | None, StringConstraints(min_length=1, max_length=256)] = None


class CustomerAnswer(ApiResponse):
    customer_id: int
    email: str
    external_id: str | None
    app_account_token: UUID  # what the customer's app passes to StoreKit (SPEC §3)
    created_at: datetime


class TokenAnswer(ApiResponse):
    jwt: str
    expires_at: datetime


def is_offer_id(value: str) -> bool:
    return re.fullmatch(OFFER_ID_PATTERN, value) is not None
