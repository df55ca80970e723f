"""The deliveries not settled as succeeded have an index of their own: /metrics counts them there
instead of reading every delivery ever made.

Building it reads the table once and holds off writes to it meanwhile (seconds for millions of
rows); run the migration when deliveries are quiet, or create the index CONCURRENTLY by hand
first (the same name and definition: this migration then finds it and does nothing).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_unsettled",
        "webhook_deliveries",
        ["status"],
        postgresql_where=sa.text("status <> 'succeeded'"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_unsettled", table_name="webhook_deliveries")
