"""Posting notifications as Apple does, and what Apple records of each attempt.

A post succeeds when the server answers 200 to 206; any other status is
``UNSUCCESSFUL_HTTP_RESPONSE_CODE``. Transport failures map onto Apple's ``sendAttemptResult``
values: a refused connection (the server is down) is ``SOCKET_ISSUE``, a timeout ``TIMED_OUT``, a
failed TLS handshake ``TLS_ISSUE``, a redirect loop ``CIRCULAR_REDIRECT``, a connection closed
before any answer ``NO_RESPONSE`` and during one ``PREMATURE_CLOSE``, an answer that is not HTTP
``INVALID_RESPONSE``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from typing import Any

import httpx

from app.simulator.model import DeliveryAttempt, SendAttemptResult

SUCCESS_CODES = range(200, 207)
MAX_REDIRECTS = 10
_NO_ANSWER = "without sending a response"
_CUT_SHORT = "peer closed connection"


def result_of_status(status_code: int) -> SendAttemptResult:
    if status_code in SUCCESS_CODES:
        return SendAttemptResult.SUCCESS
    return SendAttemptResult.UNSUCCESSFUL_HTTP_RESPONSE_CODE


def _caused_by_tls(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def result_of_error(error: httpx.HTTPError) -> SendAttemptResult:
    """Apple's name for a failed post."""
    if isinstance(error, httpx.TimeoutException):
        return SendAttemptResult.TIMED_OUT
    if isinstance(error, httpx.TooManyRedirects):
        return SendAttemptResult.CIRCULAR_REDIRECT
    if _caused_by_tls(error):
        return SendAttemptResult.TLS_ISSUE
    if isinstance(error, httpx.RemoteProtocolError) and _NO_ANSWER in str(error):
        return SendAttemptResult.NO_RESPONSE
    if isinstance(error, httpx.RemoteProtocolError) and _CUT_SHORT in str(error):
        return SendAttemptResult.PREMATURE_CLOSE
    if isinstance(error, httpx.ProtocolError | httpx.DecodingError):
        return SendAttemptResult.INVALID_RESPONSE
    if isinstance(error, httpx.NetworkError):
        return SendAttemptResult.SOCKET_ISSUE
    return SendAttemptResult.OTHER


class Notifier:
    """Posts notifications with one shared HTTP client, made on first use, and runs what Apple
    does after answering (test notifications, extensions) as background tasks."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._timeout)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS
            )
        return self._client

    async def post(self, url: str, signed_payload: str, at: int) -> DeliveryAttempt:
        try:
            response = await self._http().post(url, json={"signedPayload": signed_payload})
        except httpx.HTTPError as error:
            result = result_of_error(error)
            return DeliveryAttempt(url, at, result, error=f"{type(error).__name__}: {error}")
        return DeliveryAttempt(
            url, at, result_of_status(response.status_code), response.status_code
        )
