"""Settings: every variable of docs/api.md §9, read once from the environment and `.env`."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_KEY_LENGTH = 32
DEFAULT_SYNC_RETRY_SCHEDULE = (1, 5, 30, 120, 600, 1800)
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


def _parse_schedule(value: object) -> object:
    if not isinstance(value, str):
        return value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError as exc:
        raise ValueError("a comma-separated list of seconds, such as 1,5,30") from exc
    if any(n < 0 for n in numbers):
        raise ValueError("seconds must not be negative")
    return numbers


class Settings(BaseSettings):
    """The service's configuration. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str | None = None
    data_dir: Path = Path(".data")
    admin_token: str | None = Field(default=None, min_length=16)
    secret_key: str | None = Field(default=None, min_length=MIN_SECRET_KEY_LENGTH)
    secret_key_previous: Annotated[tuple[str, ...], NoDecode] = ()
    apple_root_certificates: Annotated[tuple[Path, ...], NoDecode] = ()
    apple_online_checks: bool = True
    apple_api_base_url: str | None = None
    sync_retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_SYNC_RETRY_SCHEDULE
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_allow_private_networks: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] | None = None
    customer_token_ttl: int = Field(default=900, ge=60, le=86400)
    jwt_private_key: str | None = None
    jwt_private_key_previous: str | None = None
    metrics_token: str | None = Field(default=None, min_length=16)
    run_worker: bool = True  # set by `serve --no-worker`
    worker_concurrency: int = Field(default=16, ge=1, le=1000)
    job_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    retention_days: int = Field(default=90, ge=1, le=3650)
    apple_reconcile_interval: float = Field(default=900.0, ge=1, le=86400)
    # Apple's rate limits (app.apple.budget): the share of Apple's figures the service spends, or
    # a number of calls per window for every endpoint instead; the window in seconds.
    apple_budget_share: float = Field(default=0.9, gt=0, le=1)
    apple_budget: int | None = Field(default=None, ge=1)
    apple_budget_window: float = Field(default=3600.0, ge=1, le=86400)

    @field_validator("jwt_private_key_previous", "metrics_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("apple_root_certificates", mode="before")
    @classmethod
    def _roots(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(p.strip()) for p in value.split(",") if p.strip())
        return value

    @field_validator("apple_root_certificates")
    @classmethod
    def _roots_exist(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        missing = [str(p) for p in value if not p.is_file()]
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}")
        return value

    @field_validator("secret_key_previous", mode="before")
    @classmethod
    def _previous_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("secret_key_previous")
    @classmethod
    def _previous_keys_long_enough(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) < MIN_SECRET_KEY_LENGTH for key in value):
            raise ValueError(f"each key must have at least {MIN_SECRET_KEY_LENGTH} characters")
        return value

    @field_validator("sync_retry_schedule", "webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        return _parse_schedule(value)

    @field_validator("apple_api_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "text" if sys.stderr.isatty() else "json"


class ConfigurationError(SystemExit):
    """A bad setting: the process stops with one line naming the variable."""


DEFAULT_SECRETS_DIR = "/run/secrets"


def secrets_dir() -> Path | None:
    """Where Docker (and Compose, and Swarm) mount secrets: a file per variable, named as it is
    (`/run/secrets/secret_key` or `SECRET_KEY`). `SECRETS_DIR` names another directory. A variable
    set in the environment wins over its file."""
    path = Path(os.environ.get("SECRETS_DIR") or DEFAULT_SECRETS_DIR)
    return path if path.is_dir() else None


def load_settings() -> Settings:
    """Read the settings (the environment, `.env`, then Docker secrets), turning a validation
    error into one clear line per bad variable."""
    build: Any = Settings  # pydantic-settings takes `_secrets_dir` beside the fields
    try:
        return cast(Settings, build(_secrets_dir=secrets_dir()))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
            lines.append(f"storekit-sync: invalid {name}: {error['msg']}")
        raise ConfigurationError("\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
