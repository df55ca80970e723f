"""Shared pieces of the JSON schemas: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

BUNDLE_ID_PATTERN = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
# An app's bundle id (a register's, an app's of the provisioning API), as App Store Connect takes it.
BundleId = Annotated[str, StringConstraints(pattern=BUNDLE_ID_PATTERN, max_length=155)]


class ApiModel(BaseModel):
    """A JSON body of the API: fields are camelCase on the wire; unknown fields are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ApiResponse(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
