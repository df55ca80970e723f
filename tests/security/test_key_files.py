"""docs/api.md §9: the keys generated into DATA_DIR are readable by their owner only, from their first byte."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from app.security import load_secret_key, load_signing_key, write_once


def _no_chmod(*args: object, **kwargs: object) -> None:
    """Stands in for every chmod: a file that is 0600 afterwards was created 0600."""


def test_key_files_are_created_0600_not_narrowed_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "chmod", _no_chmod)
    monkeypatch.setattr(os, "fchmod", _no_chmod)
    previous_umask = os.umask(0)  # a umask that takes nothing away
    try:
        load_secret_key(None, tmp_path)
        load_signing_key(None, tmp_path)
    finally:
        os.umask(previous_umask)
    for name in ("secret.key", "jwt-signing-key.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jwt-signing-key.pem", "secret.key"]


def test_the_first_writer_wins_and_every_writer_reads_its_content(tmp_path: Path) -> None:
    path, writers = tmp_path / "secret.key", 8
    start = threading.Barrier(writers)
    seen: list[bytes] = []

    def write(n: int) -> None:
        start.wait()
        seen.append(write_once(path, f"key-{n}".encode()))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen) == writers
    assert path.read_bytes() == seen[0]
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
