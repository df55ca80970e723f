"""What the operator console shows: what Apple said to each sync, and the activity per minute.

Revision ID: 0011
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Apple's verified transaction, latest transaction, renewal info and status, decoded, written
    # by the finalize's one UPDATE. Adding a nullable column without a default rewrites nothing.
    op.add_column("synchronizations", sa.Column("apple_data", JSONB(), nullable=True))
    # Counts per publisher (0: all of them), minute, metric and label, added by each process
    # every few seconds; the charts read a day at most, through the key; older rows are pruned
    # through the minute.
    op.create_table(
        "activity_minutes",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("label", sa.String(96), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "publisher_id", "minute", "metric", "label", name="pk_activity_minutes"
        ),
    )
    op.create_index("ix_activity_minutes_minute", "activity_minutes", ["minute"])


def downgrade() -> None:
    op.drop_table("activity_minutes")
    op.drop_column("synchronizations", "apple_data")
