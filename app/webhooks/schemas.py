"""Webhook bodies and answers (docs/api.md §5): subscriptions and the deliveries API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from app.enums import DeliveryStatus, Topic
from app.schemas import ApiModel, ApiResponse

TOPIC_PATTERN = "^(" + "|".join(Topic) + ")$"
MAX_ENDPOINTS_PER_TOPIC = 10
MAX_URL_LENGTH = 2048


class HmacOptions(ApiModel):
    hash_alg: Literal["SHA256"]
    shared_secret: Annotated[
        str, StringConstraints(min_length=16, max_length=64), Field(repr=False)
    ]


class Verification(ApiModel):
    """Cleeng's verification object; HMAC-SHA256 is the only kind there is."""

    name: Literal["HMAC"]
    options: HmacOptions


class EndpointIn(ApiModel):
    """An endpoint of a topic: its URL, and the secret its deliveries are signed with."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks",
                    "verification": {
                        "name": "HMAC",
                        "options": {
                            "hashAlg": "SHA256",
                            "sharedSecret": "a-secret-of-16-to-64-chars",
                        },
                    },
                }
            ]
        }
    )

    url: Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_URL_LENGTH),
        Field(
            description="http(s); private and loopback addresses only with"
            " WEBHOOK_ALLOW_PRIVATE_NETWORKS=true."
        ),
    ]
    verification: Verification | None = Field(
        default=None,
        description="Left out, the service generates a secret and shows it once, in this answer.",
    )


EndpointsIn = Annotated[list[EndpointIn], Field(max_length=MAX_ENDPOINTS_PER_TOPIC)]


class HmacOptionsOut(ApiResponse):
    hash_alg: Literal["SHA256"] = "SHA256"
    shared_secret: str | None = Field(
        default=None, description="Only in the PUT answer, only when the service generated it."
    )


class VerificationOut(ApiResponse):
    name: Literal["HMAC"] = "HMAC"
    options: HmacOptionsOut = HmacOptionsOut()


class EndpointOut(ApiResponse):
    url: str
    verification: VerificationOut
    active: bool = Field(description="False once the endpoint answered 410 Gone.")


class DeliveryItem(ApiResponse):
    delivery_id: int
    webhook_id: str
    topic: str
    url: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryList(ApiResponse):
    items: list[DeliveryItem]
