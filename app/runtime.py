"""What runs beside the API in one process: the Apple gateway, the job worker, the waker."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from app.apple.client import AppleGateway
from app.context import Context
from app.db import create_pool
from app.jobs.handlers import job_handlers
from app.jobs.worker import Waker, Worker
from app.webhooks.sending import start_http_client, stop_http_client

log = logging.getLogger(__name__)


class Runtime:
    """Starts and stops the long-lived parts of a process, in order."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None

    async def start(self, *, run_worker: bool | None = None) -> None:
        context = self.context
        context.pool = await create_pool(context.database_url)
        context.apple = AppleGateway(context.settings)
        start_http_client(context)  # webhook deliveries
        if context.settings.run_worker if run_worker is None else run_worker:
            self.worker = Worker(
                context,
                job_handlers(),
                concurrency=context.settings.worker_concurrency,
                lease=timedelta(seconds=context.settings.job_lease_seconds),
            )
            self._worker_task = asyncio.create_task(self.worker.run())
        context.waker = Waker(context, [self.worker] if self.worker else [])

    async def wait(self) -> None:
        """Until the worker stops (the `worker` command's whole life)."""
        if self._worker_task is not None:
            await self._worker_task

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    async def stop(self) -> None:
        if self.worker is not None and self._worker_task is not None:
            self.worker.stop()
            # Cancelled already when the event loop is being torn down: nothing left to wait for.
            await asyncio.gather(self._worker_task, return_exceptions=True)
        await stop_http_client(self.context)
        if self.context.waker is not None:
            await self.context.waker.close()
        if self.context.apple is not None:
            await self.context.apple.close()
