"""The baseline: the least a registration endpoint can do on this stack.

A FastAPI endpoint that validates the same body as `POST /storekit2/purchases` and does one asyncpg
`INSERT` of a row shaped like a synchronization into a scratch table, from an asyncpg pool, under
uvicorn with the service's settings (one process, `log_config=None`, `proxy_headers=True`).
The service's registrations/s divided by this one's is the figure that survives a change of machine.

Run: `DATABASE_URL=postgresql://… python -m bench.baseline --port P`.
"""

from __future__ import annotations

import argparse
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import uvicorn
from fastapi import FastAPI, Request, status
from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress
from pydantic.alias_generators import to_camel

TABLE = """
CREATE TABLE IF NOT EXISTS bench_baseline (
    publisher_id bigint NOT NULL,
    id text NOT NULL,
    transaction_id text NOT NULL,
    customer_id bigint NOT NULL,
    ip_address text,
    status text NOT NULL,
    attempts integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (publisher_id, id)
)
"""
INSERT = (
    "INSERT INTO bench_baseline (publisher_id, id, transaction_id, customer_id, ip_address,"
    " status, attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'processing', 0, $6, $6)"
)
PUBLISHER_ID = 1


class PurchaseRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    cleeng_customer_id: int
    transaction_id: Annotated[str, Field(pattern=r"^\d{1,32}$")]
    ip_address: IPvAnyAddress | None = None


class Accepted(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    synchronization_id: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=20)
    await pool.execute(TABLE)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(title="storekit-sync benchmark baseline", lifespan=lifespan)


@app.post("/storekit2/purchases", status_code=status.HTTP_202_ACCEPTED)
async def register(body: PurchaseRequest, request: Request) -> Accepted:
    sync_id, now = str(uuid.uuid4()), datetime.now(UTC)
    ip = str(body.ip_address) if body.ip_address else None
    args = (PUBLISHER_ID, sync_id, body.transaction_id, body.cleeng_customer_id, ip, now)
    await request.app.state.pool.execute(INSERT, *args)
    return Accepted(synchronization_id=sync_id)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, workers=1, log_config=None, proxy_headers=True
    )


if __name__ == "__main__":
    main()
