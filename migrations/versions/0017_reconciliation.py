"""Reconciliation with Apple (docs/api.md §6): where each app's notification history has been read to,
the passes, the source of each notification, the expiry safety net's index, and the test
notifications an operator asked for.

- `apple_notifications.source`: `posted` or `history`. Every existing row was posted. The default
  stays, so that a process of the previous release, still receiving during a rolling upgrade,
  stores its notifications as posted.
- `subscriptions.apple_checked_at`: when the safety net last read the subscription from Apple.
- `ix_subscriptions_lapsing`: auto-renewable subscriptions still stored active, by expiry: what
  the safety net looks through, from the oldest expiry.
- `notification_history_cursors`, `reconcile_passes`, `apple_test_notifications`: new.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = ["storekit2_apps.publisher_id", "storekit2_apps.bundle_id"]


def upgrade() -> None:
    op.add_column(
        "apple_notifications",
        sa.Column("source", sa.String(16), nullable=False, server_default="posted"),
    )
    op.create_check_constraint("source", "apple_notifications", "source IN ('posted', 'history')")
    op.add_column(
        "subscriptions", sa.Column("apple_checked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_subscriptions_lapsing",
        "subscriptions",
        ["expires_at", "id"],
        postgresql_where=sa.text(
            "status = 'active' AND product_type = 'Auto-Renewable Subscription'"
        ),
    )
    op.create_table(
        "notification_history_cursors",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("bundle_id", sa.String(155), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("checked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("page_token", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "publisher_id", "bundle_id", "environment", name="pk_notification_history_cursors"
        ),
        sa.ForeignKeyConstraint(
            ["publisher_id", "bundle_id"],
            APP,
            name="fk_notification_history_cursors_app",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "environment IN ('Production', 'Sandbox')",
            name="environment",
        ),
    )
    op.create_table(
        "reconcile_passes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("recovered", sa.Integer(), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("corrected", sa.Integer(), nullable=False),
        sa.Column("apple_errors", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reconcile_passes"),
        sa.CheckConstraint(
            "outcome IN ('completed', 'partial', 'stopped', 'superseded')",
            name="outcome",
        ),
    )
    op.create_index("ix_reconcile_passes_started_at", "reconcile_passes", ["started_at"])
    op.create_table(
        "apple_test_notifications",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(256), nullable=False),
        sa.Column("bundle_id", sa.String(155), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("publisher_id", "token", name="pk_apple_test_notifications"),
        sa.ForeignKeyConstraint(
            ["publisher_id", "bundle_id"],
            APP,
            name="fk_apple_test_notifications_app",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_apple_test_notifications_requested_at", "apple_test_notifications", ["requested_at"]
    )


def downgrade() -> None:
    op.drop_table("apple_test_notifications")
    op.drop_table("reconcile_passes")
    op.drop_table("notification_history_cursors")
    op.drop_index("ix_subscriptions_lapsing", table_name="subscriptions")
    op.drop_column("subscriptions", "apple_checked_at")
    op.drop_column("apple_notifications", "source")
