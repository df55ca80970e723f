"""What the reconciliation and the queue remember of failures.

- `subscriptions.apple_check_failed_at`: when the expiry safety net last failed to read the
  subscription from Apple (a transient failure that outlasted its retries). A subscription that
  failed since it lapsed is read after the others, so it never holds up the rest.
- `jobs.failures`: how many times in a row the job's handler failed (raised); any other outcome
  sets it back to 0. The backoff before running a failed job again follows it, not `attempts`
  (which counts every claim, and which a periodic job's fence relies on never going back).

Both are new columns (the second with a constant default): no table is rewritten.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscriptions",
        sa.Column("apple_check_failed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "jobs", sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )


def downgrade() -> None:
    op.drop_column("jobs", "failures")
    op.drop_column("subscriptions", "apple_check_failed_at")
