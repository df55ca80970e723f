"""JSON bodies of the control API (``/sim``): camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from app.simulator.faults import FaultKind
from app.simulator.model import Environment, OwnershipType, ProductType, SendAttemptResult


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class AppCreate(Body):
    bundle_id: str = Field(min_length=1)
    app_apple_id: int | None = Field(default=None, description="default: a random 10-digit id")
    issuer_id: str | None = Field(default=None, description="default: a random UUID")
    key_id: str | None = Field(default=None, description="default: 10 random characters")
    public_key: str | None = Field(
        default=None, description="EC P-256 PEM; omitted: the simulator makes a key pair"
    )
    notification_url: str | None = None
    environment: Environment = Field(
        default=Environment.SANDBOX,
        description="what calls at the root that name no transaction act for (test notifications, "
        "mass extensions); under /sandbox and /production, those environments",
    )


class AppOut(Answer):
    bundle_id: str
    app_apple_id: int
    issuer_id: str
    key_id: str
    notification_url: str | None = None
    environment: Environment = Environment.SANDBOX
    private_key: str | None = Field(
        default=None, description="PKCS8 PEM, only when the simulator made the key pair"
    )


class NotificationUrl(Body):
    url: str | None


class Delivery(Body):
    fail_delivery: SendAttemptResult | None = Field(
        default=None,
        description="record the notification with a failed attempt of this result, without "
        "posting it (as if the server had been down)",
    )

    @field_validator("fail_delivery")
    @classmethod
    def _a_failure(cls, value: SendAttemptResult | None) -> SendAttemptResult | None:
        if value is SendAttemptResult.SUCCESS:
            raise ValueError("failDelivery is a failure: any sendAttemptResult but SUCCESS")
        return value


class PurchaseCreate(Delivery):
    bundle_id: str
    product_id: str
    type: ProductType
    environment: Environment = Environment.SANDBOX
    purchase_date: int | None = Field(default=None, description="Unix ms; default now")
    expires_date: int | None = Field(
        default=None, description="Unix ms; auto-renewable default: purchaseDate + 30 days"
    )
    quantity: int = Field(default=1, ge=1)
    app_account_token: UUID | None = None
    offer_type: int | None = Field(default=None, ge=1, le=4)
    price: int | None = Field(default=None, description="milliunits; default 9990")
    currency: str | None = Field(default=None, description="default USD")
    subscription_group_identifier: str | None = None
    account: str | None = Field(
        default=None,
        description="the customer's Apple account: one account's purchases of an app share "
        "history, statuses, refunds and app transaction; default: a new customer",
    )
    in_app_ownership_type: OwnershipType = OwnershipType.PURCHASED
    notify: bool = False


class Action(Delivery):
    notify: bool = True


class ExpireAction(Action):
    subtype: (
        Literal["VOLUNTARY", "BILLING_RETRY", "PRICE_INCREASE", "PRODUCT_NOT_FOR_SALE"] | None
    ) = Field(
        default=None, description="default: VOLUNTARY when auto-renew is off, else BILLING_RETRY"
    )


class RevokeAction(Action):
    revocation_reason: Literal[0, 1] = 0


class GracePeriodAction(Action):
    duration_seconds: float = Field(default=16 * 86_400, gt=0)


class AutoRenewAction(Action):
    enabled: bool


class NotifyAction(Delivery):
    notification_type: str
    subtype: str | None = None


class AttemptOut(Answer):
    url: str | None
    at: int
    send_attempt_result: SendAttemptResult
    status_code: int | None
    error: str | None


class NotificationOut(Answer):
    notification_uuid: str
    notification_type: str
    subtype: str | None
    bundle_id: str
    environment: Environment
    signed_date: int
    original_transaction_id: str | None
    url: str | None
    status_code: int | None
    error: str | None
    attempts: list[AttemptOut]
    signed_payload: str


class TransactionOut(Answer):
    transaction_id: str
    order_id: str
    purchase_date: int
    expires_date: int | None
    transaction_reason: str
    revocation_date: int | None
    revocation_reason: int | None
    revocation_type: str | None
    finished: bool
    consumption: dict[str, object] | None


class PurchaseOut(Answer):
    transaction_id: str = Field(description="the latest transaction")
    original_transaction_id: str
    bundle_id: str
    product_id: str
    type: ProductType
    environment: Environment
    account: str
    app_transaction_id: str
    in_app_ownership_type: OwnershipType
    status: int | None = Field(
        description="Apple's subscription status 1-5; null if no subscription"
    )
    auto_renew: bool | None
    purchase_date: int
    original_purchase_date: int
    expires_date: int | None
    grace_period_expires_date: int | None
    is_in_billing_retry_period: bool | None
    revocation_date: int | None
    revocation_reason: int | None
    app_account_token: str | None
    offer_type: int | None
    price: int | None
    currency: str | None
    subscription_group_identifier: str | None
    transactions: list[TransactionOut]
    notification: NotificationOut | None = Field(
        default=None, description="the notification this call sent, if any"
    )


class FaultCreate(Body):
    kind: FaultKind
    transaction_id: str | None = Field(default=None, description="only calls about this purchase")
    share: float = Field(default=1.0, ge=0.0, le=1.0)
    times: int | None = Field(default=None, ge=1, description="default: until removed")
    delay_seconds: float = Field(default=0.0, ge=0.0)
    retry_after_ms: int = Field(default=1000, ge=0, description="Retry-After = now + this")
    error_code: int | None = Field(
        default=None, description="not_found: Apple's 404 errorCode to answer (default 4040010)"
    )


class FaultOut(Answer):
    fault_id: str
    kind: FaultKind
    transaction_id: str | None
    share: float
    times: int | None
    delay_seconds: float
    retry_after_ms: int
    error_code: int | None
    hits: int


class RateLimitsUpdate(Body):
    enabled: bool | None = None
    window_seconds: float | None = Field(
        default=None, gt=0, description="the window budgets apply over; default 3600 (Apple's hour)"
    )
    budget: int | None = Field(
        default=None,
        ge=0,
        description="calls per window for every limited endpoint of every app; null: Apple's "
        "figures (rate x window, a tenth of it in the sandbox)",
    )


class AppRateLimit(Body):
    budget: int = Field(ge=0, description="calls per window")
    window_seconds: float | None = Field(default=None, gt=0, description="default: the global one")
    environment: Environment | None = Field(default=None, description="default: both")
    endpoint: str | None = Field(default=None, description="default: every limited endpoint")


class AppRateLimitOut(Answer):
    bundle_id: str
    budget: int
    window_seconds: float | None
    environment: Environment | None
    endpoint: str | None


class EndpointLimit(Answer):
    per_second: float = Field(description="Apple's production rate")
    production: int = Field(serialization_alias="Production")
    sandbox: int = Field(serialization_alias="Sandbox")


class RateLimitsOut(Answer):
    enabled: bool
    window_seconds: float
    budget: int | None
    endpoints: dict[str, EndpointLimit] = Field(description="each endpoint's budget per window")
    overrides: list[AppRateLimitOut]
