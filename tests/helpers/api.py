"""Talking to the service as its callers do: the admin token, publishers, customers, the envelope."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
from fastapi import FastAPI

from app.clock import MovableClock
from app.config import Settings
from app.main import create_app

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "apple_online_checks": False,
        "log_format": "json",
        "log_level": "WARNING",
    }
    values.update(overrides)
    build: Any = Settings  # pydantic-settings takes `_env_file` beside the fields
    return cast(Settings, build(_env_file=None, **values))


@dataclass
class PublisherRef:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Publisher-Token": self.token}


async def new_publisher(client: httpx.AsyncClient, name: str = "Acme TV") -> PublisherRef:
    answer = await client.post("/admin/publishers", json={"name": name}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return PublisherRef(body["publisherId"], body["publisherToken"])


async def new_customer(client: httpx.AsyncClient, publisher: PublisherRef) -> int:
    email = f"{secrets.token_hex(6)}@example.com"
    answer = await client.post(
        f"/admin/publishers/{publisher.id}/customers", json={"email": email}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["customerId"])


def assert_envelope(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    """docs/api.md §2's one error shape, with the status and code expected, and no trace."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body.get("details", []), list)
    assert "Traceback" not in answer.text
    return dict(body)


@asynccontextmanager
async def running(
    settings: Settings, clock: MovableClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with other settings than the fixture's, and a client for it."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            yield application, http
