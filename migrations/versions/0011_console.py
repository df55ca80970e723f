"""What the operator console shows: what Apple said to each sync.

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


def downgrade() -> None:
    op.drop_column("synchronizations", "apple_data")
