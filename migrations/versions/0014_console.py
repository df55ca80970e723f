"""What the operator console shows: what Apple said to each sync, the activity per minute, and
the indexes its lookups need.

Building the indexes reads their tables once and holds off writes to them meanwhile (seconds for
millions of rows); run the migration when traffic is quiet, or create them CONCURRENTLY by hand
first (the same names and definitions: this migration then finds them and does nothing).

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A sync learns its purchase when it finalizes. Not `original_transaction_id IS NOT NULL`: the
# register's lookup of resolved syncs implies that, and would then take this index.
FINALIZED = sa.text("status = 'finalized'")
SYNC_INDEXES: list[tuple[str, list[str], sa.TextClause | None]] = [
    ("ix_synchronizations_transaction", ["transaction_id", "publisher_id"], None),
    ("ix_synchronizations_customer", ["customer_id", "publisher_id", "created_at"], None),
    ("ix_synchronizations_purchase", ["original_transaction_id", "publisher_id"], FINALIZED),
]


def upgrade() -> None:
    # Apple's verified transaction, latest transaction, renewal info and status, decoded, written
    # by the finalize's one UPDATE. Adding a nullable column without a default rewrites nothing.
    op.add_column("synchronizations", sa.Column("apple_data", JSONB(), nullable=True))
    # Counts per publisher (0: all of them), minute, metric and label, added by each process
    # every few seconds; the charts read a day at most, through the key; older rows are pruned
    # through a BRIN index of the minute (rows come in minute order), which is never a candidate
    # for the charts' reads, as a btree of the minute was.
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
    op.create_index(
        "ix_activity_minutes_minute", "activity_minutes", ["minute"], postgresql_using="brin"
    )
    # Lookups lead with what they look up, never with the publisher alone (see 0007): the
    # register's check of a known transaction, now served by an index of every sync of the
    # transaction, which the console searches too; a customer's syncs, newest first; a
    # purchase's syncs.
    op.drop_index("ix_synchronizations_resolved", table_name="synchronizations")
    for name, columns, where in SYNC_INDEXES:
        op.create_index(
            name, "synchronizations", columns, postgresql_where=where, if_not_exists=True
        )
    # A sync's webhook events, and a subscription's (a notification's name no sync). An event's
    # deliveries have theirs already (0010).
    op.create_index(
        "ix_webhook_events_sync",
        "webhook_events",
        ["synchronization_id"],
        postgresql_where=sa.text("synchronization_id IS NOT NULL"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_webhook_events_subscription",
        "webhook_events",
        [sa.text("(payload ->> 'subscriptionId')"), "publisher_id"],
        postgresql_where=sa.text("(payload ->> 'subscriptionId') IS NOT NULL"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_subscription", table_name="webhook_events")
    op.drop_index("ix_webhook_events_sync", table_name="webhook_events")
    for name, _, _ in SYNC_INDEXES:
        op.drop_index(name, table_name="synchronizations")
    op.create_index(
        "ix_synchronizations_resolved",
        "synchronizations",
        ["publisher_id", "transaction_id"],
        postgresql_where=sa.text("original_transaction_id IS NOT NULL"),
    )
    op.drop_table("activity_minutes")
    op.drop_column("synchronizations", "apple_data")
