"""Typed FastAPI dependencies: the running service, and the request's transaction.

A route that writes more than one statement takes `Tx`: a connection in a transaction that the
dependency opens and commits before the answer is sent (or rolls back on error). A route that needs
one statement, or only reads, uses `context.db` directly: one statement is its own transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request

from app.context import Context
from app.db import Executor


async def get_context(request: Request) -> Context:
    return cast(Context, request.app.state.context)


Ctx = Annotated[Context, Depends(get_context)]


async def transaction(context: Ctx) -> AsyncIterator[Executor]:
    """The request's transaction: committed before the answer is sent, rolled back on error."""
    async with context.db.transaction() as tx:
        yield tx


# scope="function": FastAPI runs the teardown (the commit) before the answer is sent, not after.
# A 202 is a promise that survives a crash only if its transaction committed first.
Tx = Annotated[Executor, Depends(transaction, scope="function")]
