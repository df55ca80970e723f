"""Webhook deliveries keep their order per URL: `webhook_deliveries.after_delivery_id`.

The deliveries of one cause (a sync, a notification) to one URL form a chain: each waits for the
first attempt of the one before it (`after_delivery_id`), and gets its job only then.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a catalog change only, whatever the table's size. Deliveries written
    # before it wait for nothing.
    op.add_column(
        "webhook_deliveries", sa.Column("after_delivery_id", sa.BigInteger(), nullable=True)
    )
    op.create_foreign_key(
        "fk_webhook_deliveries_after_delivery_id_webhook_deliveries",
        "webhook_deliveries",
        "webhook_deliveries",
        ["after_delivery_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_webhook_deliveries_after_delivery_id",
        "webhook_deliveries",
        ["after_delivery_id"],
        postgresql_where=sa.text("after_delivery_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_after_delivery_id", table_name="webhook_deliveries")
    op.drop_constraint(
        "fk_webhook_deliveries_after_delivery_id_webhook_deliveries",
        "webhook_deliveries",
        type_="foreignkey",
    )
    op.drop_column("webhook_deliveries", "after_delivery_id")
