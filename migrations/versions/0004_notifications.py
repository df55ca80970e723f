"""App Store Server Notifications V2: what arrived and what it did.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "apple_notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("notification_uuid", sa.String(64), nullable=False),
        sa.Column("notification_type", sa.String(64), nullable=False),
        sa.Column("subtype", sa.String(64), nullable=True),
        sa.Column("environment", sa.String(16), nullable=True),
        sa.Column("original_transaction_id", sa.String(32), nullable=True),
        sa.Column("transaction_id", sa.String(32), nullable=True),
        sa.Column("signed_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("applied_at", TS, nullable=True),
        sa.Column("apple_status", sa.Integer(), nullable=True),
        sa.Column("transaction_info", postgresql.JSONB(), nullable=True),
        sa.Column("renewal_info", postgresql.JSONB(), nullable=True),
        sa.Column("signed_payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apple_notifications"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_apple_notifications_publisher_id_publishers",
            ondelete="CASCADE",
        ),
        # Apple may post a notification several times: it is stored once (docs/api.md §6).
        sa.UniqueConstraint(
            "publisher_id", "notification_uuid", name="uq_apple_notifications_publisher_uuid"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'applied', 'ignored', 'stored')",
            name="ck_apple_notifications_status",
        ),
    )
    op.create_index(
        "ix_apple_notifications_publisher", "apple_notifications", ["publisher_id", "id"]
    )
    op.create_index(
        "ix_apple_notifications_purchase",
        "apple_notifications",
        ["publisher_id", "original_transaction_id", "status"],
    )


def downgrade() -> None:
    op.drop_table("apple_notifications")
