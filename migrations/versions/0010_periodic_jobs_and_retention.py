"""Periodic jobs (one row each: `jobs.singleton`), the indexes retention deletes by, and autovacuum
settings that fit a queue.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# `jobs` is a queue: every sync and every delivery inserts a row and deletes it moments later.
# With PostgreSQL's defaults autovacuum waits for 20 % of the table to be dead, which for a small
# table under a steady flow means dead tuples pile up between passes and every claim walks them.
# Vacuum it after a thousand, at once, and leave room on each page for the lease updates (which
# change no indexed column, so they can stay on the page: HOT).
QUEUE_STORAGE = {
    "fillfactor": "70",
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_cost_delay": "0",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "1000",
}


def upgrade() -> None:
    op.add_column("jobs", sa.Column("singleton", sa.Text(), nullable=True))
    op.create_index(
        "uq_jobs_singleton",
        "jobs",
        ["singleton"],
        unique=True,
        postgresql_where=sa.text("singleton IS NOT NULL"),
    )
    # Retention deletes events by their age once their deliveries are gone; deleting an event
    # looks its deliveries up by event_id (the foreign key had no index).
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])
    settings = ", ".join(f"{name} = {value}" for name, value in QUEUE_STORAGE.items())
    op.execute(f"ALTER TABLE jobs SET ({settings})")


def downgrade() -> None:
    op.execute(f"ALTER TABLE jobs RESET ({', '.join(QUEUE_STORAGE)})")
    op.drop_index("ix_webhook_deliveries_event_id", table_name="webhook_deliveries")
    op.drop_index("uq_jobs_singleton", table_name="jobs")
    op.drop_column("jobs", "singleton")
