"""Typed FastAPI dependencies for the context and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import Context
from app.db import unit_of_work


async def get_context(request: Request) -> Context:
    return cast(Context, request.app.state.context)


Ctx = Annotated[Context, Depends(get_context)]


async def get_session(context: Ctx) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed before the answer is sent, rolled back on error."""
    async with unit_of_work(context.sessions) as session:
        yield session


# scope="function": FastAPI runs the teardown (our commit) before the answer is sent, not after.
# A 202 is a promise that survives a crash only if its transaction committed first.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
