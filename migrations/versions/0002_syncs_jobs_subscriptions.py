"""Synchronizations, subscriptions, the job queue, webhook events.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _publisher_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["publisher_id"],
        ["publishers.id"],
        name=f"fk_{table}_publisher_id_publishers",
        ondelete="CASCADE",
    )


def _synchronizations() -> None:
    op.create_table(
        "synchronizations",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(32), nullable=False),
        sa.Column("purchase_key", sa.String(32), nullable=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(256), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(40), nullable=True),
        sa.Column("access_granted", sa.Boolean(), nullable=True),
        sa.Column("offer_id", sa.String(16), nullable=True),
        sa.Column("original_transaction_id", sa.String(32), nullable=True),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("publisher_id", "id", name="pk_synchronizations"),
        _publisher_fk("synchronizations"),
    )
    # One unfinalized sync per transaction, and per purchase where it is known (docs/api.md §3).
    op.create_index(
        "uq_synchronizations_active_transaction",
        "synchronizations",
        ["publisher_id", "transaction_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'finalized'"),
    )
    op.create_index(
        "uq_synchronizations_active_purchase",
        "synchronizations",
        ["publisher_id", "purchase_key"],
        unique=True,
        postgresql_where=sa.text("status <> 'finalized' AND purchase_key IS NOT NULL"),
    )
    op.create_index(
        "ix_synchronizations_lookup", "synchronizations", ["publisher_id", "transaction_id"]
    )


def _subscriptions() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(start=100_000_001), nullable=False),
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("offer_id", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("product_type", sa.String(40), nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column("original_transaction_id", sa.String(32), nullable=False),
        sa.Column("latest_transaction_id", sa.String(32), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("grace_expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("apple_status", sa.Integer(), nullable=True),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("in_trial", sa.Boolean(), nullable=False),
        sa.Column("terminated_reason", sa.String(16), nullable=True),
        sa.Column("apple_signed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        _publisher_fk("subscriptions"),
    )
    # A purchase has at most one subscription that is not terminated: its owner's (docs/api.md §3).
    op.create_index(
        "uq_subscriptions_current_purchase",
        "subscriptions",
        ["publisher_id", "original_transaction_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'terminated'"),
    )
    op.create_index(
        "ix_subscriptions_customer", "subscriptions", ["publisher_id", "customer_id", "offer_id"]
    )


def _jobs_and_events() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("run_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_due", "jobs", ["run_at"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("synchronization_id", sa.String(256), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_events"),
        _publisher_fk("webhook_events"),
    )
    op.create_index("ix_webhook_events_publisher", "webhook_events", ["publisher_id", "id"])


def upgrade() -> None:
    _synchronizations()
    _subscriptions()
    _jobs_and_events()


def downgrade() -> None:
    for table in ("webhook_events", "jobs", "subscriptions", "synchronizations"):
        op.drop_table(table)
