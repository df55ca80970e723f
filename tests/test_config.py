"""Settings from Docker secrets: a file per variable in /run/secrets (or SECRETS_DIR); the
environment wins over a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_settings


def test_secrets_come_from_files_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "secret_key").write_text("a-secret-key-from-a-docker-secret-0123456789\n")
    (secrets / "METRICS_TOKEN").write_text("metrics-token-from-a-file")
    (secrets / "admin_token").write_text("admin-token-from-a-file-0123")
    (secrets / "unrelated").write_text("not a setting")
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("SECRET_KEY", "METRICS_TOKEN", "ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(secrets))
    monkeypatch.setenv("ADMIN_TOKEN", "admin-token-from-the-environment")
    settings = load_settings()
    assert settings.secret_key == "a-secret-key-from-a-docker-secret-0123456789"
    assert settings.metrics_token == "metrics-token-from-a-file"
    assert settings.admin_token == "admin-token-from-the-environment"


def test_no_secrets_directory_is_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "none"))
    assert load_settings().metrics_token is None
