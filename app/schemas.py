"""Shared pieces of the JSON schemas: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

BUNDLE_ID_PATTERN = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
# An app's bundle id (a register's, an app's of the provisioning API), as App Store Connect takes it.
BundleId = Annotated[str, StringConstraints(pattern=BUNDLE_ID_PATTERN, max_length=155)]
NUL = "\x00"


def _refuse_nul(value: Any) -> Any:
    """PostgreSQL stores no NUL character in text: refuse it where it arrives (docs/api.md §2)."""
    if isinstance(value, str) and NUL in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    if isinstance(value, list | tuple):
        for item in value:
            _refuse_nul(item)
    return value


class ApiModel(BaseModel):
    """A JSON body of the API: fields are camelCase on the wire; unknown fields are refused;
    no string may hold the NUL character."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _refuse_nul(value)


class ApiResponse(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
