"""docs/api.md §7 across real processes: a publisher token revoked through one API process is refused by
another within one second, though that other one had it in memory."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.api import ADMIN, ADMIN_TOKEN
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready, wait_until

MEMORY_HITS = re.compile(r'^storekit_publisher_token_lookups_total\{source="memory"\} (\S+)$', re.M)


@pytest.fixture
def two_apis(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[list[str]]:
    env = clean_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    services, urls = [], []
    for name in ("api-a", "api-b"):
        port = free_port()
        args = ["serve", "--port", str(port), "--no-worker"]
        services.append(ServiceProcess(args, env, tmp_path / f"{name}.log"))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: all(is_ready(url) for url in urls), 30, "both API processes")
        yield urls
    finally:
        for service in services:
            service.stop()


def _memory_hits(http: httpx.Client, url: str) -> float:
    found = MEMORY_HITS.search(http.get(f"{url}/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_a_token_revoked_through_one_process_is_refused_by_the_other_within_a_second(
    two_apis: list[str],
) -> None:
    a, b = two_apis
    with httpx.Client(timeout=10) as http:
        made = http.post(f"{a}/admin/publishers", json={"name": "Two processes"}, headers=ADMIN)
        publisher_id = made.json()["publisherId"]
        tokens_url = f"/admin/publishers/{publisher_id}/tokens"
        second = http.post(f"{a}{tokens_url}", headers=ADMIN).json()
        token = {"X-Publisher-Token": second["publisherToken"]}
        offers = f"{b}/admin/publishers/{publisher_id}/offers"

        def answered_from_memory_by_b() -> bool:
            before = _memory_hits(http, b)
            assert http.get(offers, headers=token).status_code == 200
            return _memory_hits(http, b) > before

        wait_until(answered_from_memory_by_b, 10, "B answering the token from memory")
        revoked = http.delete(f"{a}{tokens_url}/{second['tokenId']}", headers=ADMIN)
        revoked_at = time.monotonic()
        assert revoked.status_code == 204
        while (answer := http.get(offers, headers=token)).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, "B still takes the revoked token"
        took = time.monotonic() - revoked_at
        assert answer.status_code == 401 and answer.json()["code"] == "AUTH0002"
        assert took < 1.0
        first = {"X-Publisher-Token": made.json()["publisherToken"]}
        assert http.get(offers, headers=first).status_code == 200, "the other token still works"
