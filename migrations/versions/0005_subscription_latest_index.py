"""An index for finding a purchase by its latest transaction.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Registers and transfers look a transaction up among subscriptions' latest transactions;
    # without this index that lookup read every subscription of the publisher.
    op.create_index(
        "ix_subscriptions_latest_transaction",
        "subscriptions",
        ["publisher_id", "latest_transaction_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_latest_transaction", table_name="subscriptions")
