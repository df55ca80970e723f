"""The error envelope of docs/api.md §2 and the domain errors that carry their code."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer has this one shape."""

    code: str
    message: str
    details: list[ErrorDetail] = []


class CleengError(Exception):
    """A domain error: its class names the HTTP status, code and message of the envelope."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "S0001"
    message: ClassVar[str] = "Internal Server Error"

    def __init__(
        self, details: list[ErrorDetail] | None = None, message: str | None = None
    ) -> None:
        super().__init__(self.code)
        self.details = details or []
        # What this answer says: the class's message, or one that names what was wrong.
        self.text = message or self.message

    def body(self) -> dict[str, Any]:
        return ErrorBody(code=self.code, message=self.text, details=self.details).model_dump()

    def headers(self) -> dict[str, str]:
        """Headers the answer carries beside the envelope."""
        return {}


def detail(field: str, problem: str) -> list[ErrorDetail]:
    return [ErrorDetail(field=field, problem=problem)]


class InvalidBody(CleengError):
    status, code, message = 400, "REQ0001", "Invalid body"


class InvalidPathParameters(CleengError):
    status, code, message = 400, "REQ0003", "Invalid path parameters"


class InvalidHeaders(CleengError):
    status, code, message = 400, "REQ0004", "Invalid headers"


class MissingCredentials(CleengError):
    status, code, message = 401, "AUTH0001", "Missing credentials"


class InvalidCredentials(CleengError):
    status, code, message = 401, "AUTH0002", "Invalid credentials"


class TokenExpired(InvalidCredentials):
    """An authentic customer JWT whose `exp` has passed (docs/api.md §7): the code of any bad credential,
    with a message that says what to do (get a new token)."""

    message = "Token expired"


class Forbidden(CleengError):
    status, code, message = 403, "AUTH0003", "Forbidden"


class NotFound(CleengError):
    status, code, message = 404, "REQ0100", "Entity not found"


class MethodNotAllowed(NotFound):
    """No route answers this method here: the envelope of REQ0100, with HTTP's own 405, and a
    message that names the method and the ones the path takes."""

    status, message = 405, "Method not allowed"


class SyncInProgress(CleengError):
    status, code = 409, "SK2C0101"
    message = "The resource is temporarily locked due to a concurrent request."


class TransferInProgress(CleengError):
    status, code = 409, "SK2C0103"
    message = "The resource is temporarily locked due to a concurrent request."


class PayloadTooLarge(CleengError):
    status, code, message = 413, "REQ0005", "Payload too large"


class CustomerNotFound(CleengError):
    status, code, message = 422, "SK2C0100", "Unable to find customer"


class PurchaseNotFound(CleengError):
    status, code, message = 422, "SK2C0102", "Unable to find purchase"


class TooManyRequests(CleengError):
    """A customer token's failed registers and transfers are over the limit (docs/api.md §3); the
    answer's `Retry-After` says in how many seconds the window has room again."""

    status, code, message = 429, "REQ0006", "Too many requests"

    def __init__(
        self, retry_after: int, details: list[ErrorDetail] | None = None, message: str | None = None
    ) -> None:
        super().__init__(details, message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class IntegrationNotActive(CleengError):
    status, code, message = 500, "SK2C0004", "StoreKit2 integration not activated"


class InternalError(CleengError):
    status, code, message = 500, "S0001", "Internal Server Error"


class ServiceUnavailable(CleengError):
    status, code, message = 503, "S0002", "Service unavailable"
    retry_after = 1  # seconds: a lost connection is replaced on the next try

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


ALL_ERRORS: tuple[type[CleengError], ...] = (
    InvalidBody,
    InvalidPathParameters,
    InvalidHeaders,
    MissingCredentials,
    InvalidCredentials,
    Forbidden,
    NotFound,
    SyncInProgress,
    TransferInProgress,
    PayloadTooLarge,
    CustomerNotFound,
    PurchaseNotFound,
    TooManyRequests,
    IntegrationNotActive,
    InternalError,
    ServiceUnavailable,
)
