"""Only resolved synchronizations in the lookup by transaction.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESOLVED = "original_transaction_id IS NOT NULL"


def upgrade() -> None:
    # The register looks a transaction up among resolved syncs only. As a partial index this is
    # no candidate for the lookup of a sync by its id, which takes the primary key. A whole-table
    # (publisher_id, transaction_id) index was: a plan cached while the table was still nearly
    # empty (when the two cost the same) then read every sync of the publisher per register.
    op.drop_index("ix_synchronizations_lookup", table_name="synchronizations")
    op.create_index(
        "ix_synchronizations_resolved",
        "synchronizations",
        ["publisher_id", "transaction_id"],
        postgresql_where=sa.text(RESOLVED),
    )


def downgrade() -> None:
    op.drop_index("ix_synchronizations_resolved", table_name="synchronizations")
    op.create_index(
        "ix_synchronizations_lookup", "synchronizations", ["publisher_id", "transaction_id"]
    )
