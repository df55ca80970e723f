"""The operator console seen from a test: signing in as a browser does (the form, its CSRF token,
the cookie), and reading what its pages say."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TAGS = re.compile(r"<[^>]+>")


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, "no CSRF token on the page"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(TAGS.sub(" ", page)).split())


async def post_form(
    client: httpx.AsyncClient, path: str, *, site: str = "same-origin", **fields: str
) -> httpx.Response:
    """Post a form as a browser does: urlencoded, saying which site it came from."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": site}
    return await client.post(path, content=str(httpx.QueryParams(fields)), headers=headers)


@dataclass
class Console:
    """A browser-like client of the console: its cookies, and the session's CSRF token."""

    client: httpx.AsyncClient
    csrf: str = ""

    async def sign_in(self, token: str) -> httpx.Response:
        login = await self.client.get("/console/login")
        assert login.status_code == 200, login.text
        answer = await post_form(
            self.client, "/console/login", csrf=csrf_of(login.text), token=token
        )
        if answer.status_code == 303:
            page = await self.client.get("/console")
            assert page.status_code == 200, page.text
            self.csrf = csrf_of(page.text)
        return answer

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params or None)

    async def post(self, path: str, **fields: str) -> httpx.Response:
        return await post_form(self.client, path, csrf=self.csrf, **fields)
