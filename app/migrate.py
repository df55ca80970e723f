"""Apply the Alembic migrations (`storekit-sync migrate`, and `serve` before it serves)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database to `revision`. Safe to run from several processes at once."""
    command.upgrade(alembic_config(url), revision)


def asyncpg_url(url: str) -> str:
    """A `postgresql://` URL in SQLAlchemy's asyncpg form (Alembic runs on SQLAlchemy)."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))
