"""Checking request bodies field by field, each failure answered with Apple's error code."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any, TypeGuard

from app.simulator.errors import ErrorCode, apple_error


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def int_in(
    body: Mapping[str, Any], key: str, allowed: range, code: ErrorCode, required: bool = True
) -> int | None:
    """``body[key]``: an integer in ``allowed``; absent only when not ``required``."""
    value = body.get(key)
    if value is None and not required:
        return None
    if not is_int(value) or value not in allowed:
        raise apple_error(code)
    return value


def boolean(
    body: Mapping[str, Any], key: str, code: ErrorCode, required: bool = True
) -> bool | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise apple_error(code)
    return value


def one_of(
    body: Mapping[str, Any],
    key: str,
    allowed: Collection[str],
    code: ErrorCode,
    required: bool = True,
) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise apple_error(code)
    return value


def text(body: Mapping[str, Any], key: str, longest: int, code: ErrorCode) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise apple_error(code)
    return value


def as_uuid(value: object) -> str | None:
    """The UUID in canonical (lower-case) form, or ``None`` if ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
