"""The sync end to end: the service in process, the App Store simulator over real HTTP
(`tests.helpers.shop`)."""

from __future__ import annotations

import pytest

from app.config import Settings


@pytest.fixture
def settings(shop_settings: Settings) -> Settings:
    return shop_settings
