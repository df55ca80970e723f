"""Subscription lookup indexes lead with what they look up, not with the publisher.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "subscriptions"
BEFORE = {
    "ix_subscriptions_latest_transaction": ["publisher_id", "latest_transaction_id"],
    "ix_subscriptions_customer": ["publisher_id", "customer_id", "offer_id"],
}
AFTER = {
    "ix_subscriptions_latest_transaction": ["latest_transaction_id", "publisher_id"],
    "ix_subscriptions_customer": ["customer_id", "offer_id", "publisher_id"],
    "ix_subscriptions_purchase": ["original_transaction_id", "publisher_id"],
}


def _replace(drop: dict[str, list[str]], create: dict[str, list[str]]) -> None:
    for name in drop:
        op.drop_index(name, table_name=TABLE)
    for name, columns in create.items():
        op.create_index(name, TABLE, columns)


def upgrade() -> None:
    # With publisher_id first, every one of these indexes could serve any lookup by publisher,
    # and on a nearly empty table the planner costs them the same: a plan cached then (the
    # finalize's lookup of the purchase's current subscription) read every subscription of the
    # publisher through the latest-transaction index, per sync. Now each lookup has only indexes
    # that fit it whole. The purchase index also serves the lookup of terminated subscriptions.
    _replace(BEFORE, AFTER)


def downgrade() -> None:
    _replace(AFTER, BEFORE)
