"""Notifications end to end: the simulator posts to the service served on loopback
(`tests.helpers.appstore`)."""

from __future__ import annotations

import pytest

from app.config import Settings


@pytest.fixture
def settings(shop_settings: Settings) -> Settings:
    return shop_settings
