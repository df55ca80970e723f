"""The ownership policy and the limit on a customer token's failed registers (docs/api.md §3).

- `storekit2_integrations.ownership`: every existing publisher keeps Cleeng's behaviour,
  `transfer`.
- `customers.app_account_token`: every customer, existing ones included, gets its own random UUID
  (the default is evaluated once per row).
- `synchronizations.caller`: who registered the sync. Syncs registered before this revision count
  as the publisher's (they are not limited and follow `transfer`, as they did); new rows always name
  their caller, so the column keeps no default.
- `register_failures`: the newest failed registers and transfers of each customer token.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "storekit2_integrations",
        sa.Column("ownership", sa.String(16), nullable=False, server_default="transfer"),
    )
    op.create_check_constraint(
        "ownership", "storekit2_integrations", "ownership IN ('transfer', 'appAccountToken')"
    )
    op.add_column(
        "customers",
        sa.Column(
            "app_account_token",
            sa.Uuid(),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
    )
    op.create_unique_constraint(
        "uq_customers_app_account_token", "customers", ["app_account_token"]
    )
    # A constant default fills existing rows without rewriting the table; then it goes.
    op.add_column(
        "synchronizations",
        sa.Column("caller", sa.String(16), nullable=False, server_default="publisher"),
    )
    op.alter_column("synchronizations", "caller", server_default=None)
    op.create_check_constraint("caller", "synchronizations", "caller IN ('publisher', 'customer')")
    op.create_table(
        "register_failures",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("failed_at", postgresql.ARRAY(sa.DateTime(timezone=True)), nullable=False),
        sa.PrimaryKeyConstraint("publisher_id", "customer_id", name="pk_register_failures"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_register_failures_publisher_id_publishers",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("register_failures")
    op.drop_column("synchronizations", "caller")
    op.drop_column("customers", "app_account_token")
    op.drop_column("storekit2_integrations", "ownership")
