"""Every kind of job the worker knows, and the function that runs it."""

from __future__ import annotations

from app.jobs.worker import Handler


def job_handlers() -> dict[str, Handler]:
    from app.notifications.jobs import apply_notification_job
    from app.purchases.sync import run_sync_job
    from app.webhooks.delivery import deliver_job

    return {
        "sync": run_sync_job,
        "webhook_delivery": deliver_job,
        "apple_notification": apply_notification_job,
    }
