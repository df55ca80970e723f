"""Apple's error answers: ``{"errorCode", "errorMessage"}`` as exactly ``application/json``.

Apple's library reads the error code only when the content type is exactly ``application/json``
(no charset), and a 401 comes with an empty body. The HTTP status follows from the code:
4000000-range codes are 400, 4030000 403, 4040000 404, 4290000 429, 5000000 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

from starlette.responses import Response

from app.simulator.signing import compact_json

JSON = "application/json"


class ErrorCode(IntEnum):
    """The codes the simulator answers, named as Apple's library names them (``APIError``)."""

    GENERAL_BAD_REQUEST = 4000000
    INVALID_REQUEST_REVISION = 4000005
    INVALID_TRANSACTION_ID = 4000006
    INVALID_ORIGINAL_TRANSACTION_ID = 4000008
    INVALID_EXTEND_BY_DAYS = 4000009
    INVALID_EXTEND_REASON_CODE = 4000010
    INVALID_REQUEST_IDENTIFIER = 4000011
    START_DATE_TOO_FAR_IN_PAST = 4000012
    START_DATE_AFTER_END_DATE = 4000013
    INVALID_PAGINATION_TOKEN = 4000014
    INVALID_START_DATE = 4000015
    INVALID_END_DATE = 4000016
    PAGINATION_TOKEN_EXPIRED = 4000017
    INVALID_NOTIFICATION_TYPE = 4000018
    MULTIPLE_FILTERS_SUPPLIED = 4000019
    INVALID_TEST_NOTIFICATION_TOKEN = 4000020
    INVALID_SORT = 4000021
    INVALID_PRODUCT_TYPE = 4000022
    INVALID_PRODUCT_ID = 4000023
    INVALID_SUBSCRIPTION_GROUP_IDENTIFIER = 4000024
    INVALID_IN_APP_OWNERSHIP_TYPE = 4000026
    INVALID_EMPTY_STOREFRONT_COUNTRY_CODE_LIST = 4000027
    INVALID_STOREFRONT_COUNTRY_CODE = 4000028
    INVALID_REVOKED = 4000030
    INVALID_STATUS = 4000031
    INVALID_ACCOUNT_TENURE = 4000032
    INVALID_APP_ACCOUNT_TOKEN = 4000033
    INVALID_CONSUMPTION_STATUS = 4000034
    INVALID_CUSTOMER_CONSENTED = 4000035
    INVALID_DELIVERY_STATUS = 4000036
    INVALID_LIFETIME_DOLLARS_PURCHASED = 4000037
    INVALID_LIFETIME_DOLLARS_REFUNDED = 4000038
    INVALID_PLATFORM = 4000039
    INVALID_PLAY_TIME = 4000040
    INVALID_SAMPLE_CONTENT_PROVIDED = 4000041
    INVALID_USER_STATUS = 4000042
    APP_TRANSACTION_ID_NOT_SUPPORTED = 4000048
    INVALID_APP_ACCOUNT_TOKEN_UUID = 4000183
    FAMILY_TRANSACTION_NOT_SUPPORTED = 4000185
    TRANSACTION_ID_IS_NOT_ORIGINAL_TRANSACTION_ID = 4000187
    SUBSCRIPTION_EXTENSION_INELIGIBLE = 4030004
    SUBSCRIPTION_MAX_EXTENSION = 4030005
    FAMILY_SHARED_SUBSCRIPTION_EXTENSION_INELIGIBLE = 4030007
    ORIGINAL_TRANSACTION_ID_NOT_FOUND = 4040005
    SERVER_NOTIFICATION_URL_NOT_FOUND = 4040007
    TEST_NOTIFICATION_NOT_FOUND = 4040008
    STATUS_REQUEST_NOT_FOUND = 4040009
    TRANSACTION_ID_NOT_FOUND = 4040010
    APP_TRANSACTION_DOES_NOT_EXIST = 4040019
    RATE_LIMIT_EXCEEDED = 4290000
    GENERAL_INTERNAL_RETRYABLE = 5000001

    @property
    def http_status(self) -> int:
        return self.value // 10_000

    @property
    def message(self) -> str:
        return _MESSAGES.get(self, "Invalid request.")


_MESSAGES = {
    ErrorCode.GENERAL_BAD_REQUEST: "Bad request.",
    ErrorCode.INVALID_REQUEST_REVISION: "Invalid request revision.",
    ErrorCode.INVALID_TRANSACTION_ID: "Invalid transaction id.",
    ErrorCode.INVALID_ORIGINAL_TRANSACTION_ID: "Invalid original transaction id.",
    ErrorCode.INVALID_EXTEND_BY_DAYS: "Invalid extend by days value.",
    ErrorCode.INVALID_EXTEND_REASON_CODE: "Invalid extend reason code.",
    ErrorCode.INVALID_REQUEST_IDENTIFIER: "Invalid request identifier.",
    ErrorCode.START_DATE_TOO_FAR_IN_PAST: "Invalid request. The start date is earlier than the allowed start date.",
    ErrorCode.START_DATE_AFTER_END_DATE: "Invalid request. The end date precedes the start date or the dates are the same.",
    ErrorCode.INVALID_PAGINATION_TOKEN: "Invalid request. The pagination token is invalid.",
    ErrorCode.INVALID_START_DATE: "Invalid request. The start date is not a timestamp value represented in milliseconds.",
    ErrorCode.INVALID_END_DATE: "Invalid request. The end date is not a timestamp value represented in milliseconds.",
    ErrorCode.PAGINATION_TOKEN_EXPIRED: "Invalid request. The pagination token is expired.",
    ErrorCode.INVALID_NOTIFICATION_TYPE: "Invalid request. The notification type or subtype is invalid.",
    ErrorCode.MULTIPLE_FILTERS_SUPPLIED: "Invalid request. Supply either a transaction id or a notification type, but not both.",
    ErrorCode.INVALID_TEST_NOTIFICATION_TOKEN: "Invalid request. The test notification token is invalid.",
    ErrorCode.INVALID_SORT: "Invalid request. The sort parameter is invalid.",
    ErrorCode.INVALID_PRODUCT_TYPE: "Invalid request. The product type parameter is invalid.",
    ErrorCode.INVALID_PRODUCT_ID: "Invalid request. The product id parameter is invalid.",
    ErrorCode.INVALID_SUBSCRIPTION_GROUP_IDENTIFIER: "Invalid request. The subscription group identifier parameter is invalid.",
    ErrorCode.INVALID_IN_APP_OWNERSHIP_TYPE: "Invalid request. The in-app ownership type parameter is invalid.",
    ErrorCode.INVALID_EMPTY_STOREFRONT_COUNTRY_CODE_LIST: "Invalid request. The storefront country code list is empty.",
    ErrorCode.INVALID_STOREFRONT_COUNTRY_CODE: "Invalid request. A storefront country code is invalid.",
    ErrorCode.INVALID_REVOKED: "Invalid request. The revoked parameter is invalid.",
    ErrorCode.INVALID_STATUS: "Invalid request. The status parameter is invalid.",
    ErrorCode.INVALID_CUSTOMER_CONSENTED: "Invalid request. The customer consented field is required and must indicate the customer consented.",
    ErrorCode.APP_TRANSACTION_ID_NOT_SUPPORTED: "Invalid request. App transactionIds are not supported by this endpoint.",
    ErrorCode.INVALID_APP_ACCOUNT_TOKEN_UUID: "Invalid request. The app account token field must be a valid UUID.",
    ErrorCode.FAMILY_TRANSACTION_NOT_SUPPORTED: "Invalid request. Family Sharing transactions aren't supported by this endpoint.",
    ErrorCode.TRANSACTION_ID_IS_NOT_ORIGINAL_TRANSACTION_ID: "Invalid request. The transaction id parameter must represent the original transaction id.",
    ErrorCode.SUBSCRIPTION_EXTENSION_INELIGIBLE: "Forbidden - subscription state ineligible for extension.",
    ErrorCode.SUBSCRIPTION_MAX_EXTENSION: "Forbidden - subscription has reached maximum extension count.",
    ErrorCode.FAMILY_SHARED_SUBSCRIPTION_EXTENSION_INELIGIBLE: "Forbidden - subscriptions that users obtain through Family Sharing aren't eligible for extension.",
    ErrorCode.ORIGINAL_TRANSACTION_ID_NOT_FOUND: "Original transaction id not found.",
    ErrorCode.SERVER_NOTIFICATION_URL_NOT_FOUND: "No App Store Server Notification URL found for provided app. Check that a URL is configured in App Store Connect for this environment.",
    ErrorCode.TEST_NOTIFICATION_NOT_FOUND: "Either the test notification token is expired or the notification and status are not yet available.",
    ErrorCode.STATUS_REQUEST_NOT_FOUND: "The server didn't find a subscription-renewal-date extension request for this requestIdentifier and productId combination.",
    ErrorCode.TRANSACTION_ID_NOT_FOUND: "Transaction id not found.",
    ErrorCode.APP_TRANSACTION_DOES_NOT_EXIST: "No AppTransaction exists for the customer.",
    ErrorCode.RATE_LIMIT_EXCEEDED: "Rate limit exceeded.",
    ErrorCode.GENERAL_INTERNAL_RETRYABLE: "An unknown error occurred. Please try again.",
}


class EarlyAnswer(Exception):
    """Stops handling a call and answers with ``response`` (an Apple error, a fault, a 401)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def json_response(body: object, status_code: int = 200) -> Response:
    return Response(compact_json(body), status_code=status_code, media_type=JSON)


def apple_error(code: ErrorCode, headers: Mapping[str, str] | None = None) -> EarlyAnswer:
    body = {"errorCode": int(code), "errorMessage": code.message}
    response = json_response(body, code.http_status)
    response.headers.update(headers or {})
    return EarlyAnswer(response)


def not_found() -> EarlyAnswer:
    return apple_error(ErrorCode.TRANSACTION_ID_NOT_FOUND)


def unauthorized() -> EarlyAnswer:
    return EarlyAnswer(Response(status_code=401))
