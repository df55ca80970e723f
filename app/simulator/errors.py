"""Apple's error answers: ``{"errorCode", "errorMessage"}`` as exactly ``application/json``.

Apple's library reads the error code only when the content type is exactly ``application/json``
(no charset), and a 401 comes with an empty body.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from app.simulator.signing import compact_json

JSON = "application/json"

INVALID_REQUEST_REVISION = 4000005
INVALID_TRANSACTION_ID = 4000006
TRANSACTION_ID_NOT_FOUND = 4040010
RATE_LIMIT_EXCEEDED = 4290000
GENERAL_INTERNAL_RETRYABLE = 5000001

MESSAGES = {
    INVALID_REQUEST_REVISION: "Invalid request revision.",
    INVALID_TRANSACTION_ID: "Invalid transaction id.",
    TRANSACTION_ID_NOT_FOUND: "Transaction id not found.",
    RATE_LIMIT_EXCEEDED: "Rate limit exceeded.",
    GENERAL_INTERNAL_RETRYABLE: "An unknown error occurred. Please try again.",
}


class EarlyAnswer(Exception):
    """Stops handling a call and answers with ``response`` (an Apple error, a fault, a 401)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def json_response(body: object, status_code: int = 200) -> Response:
    return Response(compact_json(body), status_code=status_code, media_type=JSON)


def apple_error(
    status_code: int, error_code: int, headers: Mapping[str, str] | None = None
) -> EarlyAnswer:
    body = {"errorCode": error_code, "errorMessage": MESSAGES[error_code]}
    response = json_response(body, status_code)
    response.headers.update(headers or {})
    return EarlyAnswer(response)


def not_found() -> EarlyAnswer:
    return apple_error(404, TRANSACTION_ID_NOT_FOUND)


def unauthorized() -> EarlyAnswer:
    return EarlyAnswer(Response(status_code=401))
