"""Publishers, StoreKit 2 integrations, offers and their Apple products, customers.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    ]


def upgrade() -> None:
    op.create_table(
        "publishers",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_publishers"),
        sa.UniqueConstraint("token_hash", name="uq_publishers_token_hash"),
    )
    op.create_table(
        "storekit2_integrations",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("bundle_id", sa.String(155), nullable=False),
        sa.Column("app_apple_id", sa.BigInteger(), nullable=True),
        sa.Column("issuer_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("publisher_id", name="pk_storekit2_integrations"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_storekit2_integrations_publisher_id_publishers",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "environment IN ('Production', 'Sandbox', 'Auto')",
            name="ck_storekit2_integrations_environment",
        ),
    )
    op.create_table(
        "offers",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("offer_id", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("publisher_id", "offer_id", name="pk_offers"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_offers_publisher_id_publishers",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "offer_products",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column("offer_id", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("publisher_id", "product_id", name="pk_offer_products"),
        sa.ForeignKeyConstraint(
            ["publisher_id", "offer_id"],
            ["offers.publisher_id", "offers.offer_id"],
            name="fk_offer_products_offer",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_customers_publisher_id_publishers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_customers_publisher_id", "customers", ["publisher_id"])
    op.create_index(
        "uq_customers_publisher_email", "customers", ["publisher_id", "email"], unique=True
    )
    op.create_index(
        "uq_customers_publisher_external_id",
        "customers",
        ["publisher_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )


def downgrade() -> None:
    for table in ("customers", "offer_products", "offers", "storekit2_integrations", "publishers"):
        op.drop_table(table)
