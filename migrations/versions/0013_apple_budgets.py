"""Apple's rate limits, shared by every process: `apple_budgets` (calls used in the current window,
per app, environment and endpoint) and `apple_pauses` (an app told to wait by a 429).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _app_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("bundle_id", sa.String(155), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "apple_budgets",
        *_app_columns(),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("used_background", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "publisher_id", "bundle_id", "environment", "endpoint", name="pk_apple_budgets"
        ),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_apple_budgets_publisher_id_publishers",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "apple_pauses",
        *_app_columns(),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("publisher_id", "bundle_id", "environment", name="pk_apple_pauses"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_apple_pauses_publisher_id_publishers",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("apple_pauses")
    op.drop_table("apple_budgets")
