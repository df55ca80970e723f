"""Publisher tokens of their own: any number per publisher, each revocable, with when it was made
and last used. Each publisher's one token moves here unchanged, so it keeps working.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "publisher_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("last_used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_publisher_tokens"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publishers.id"],
            name="fk_publisher_tokens_publisher_id_publishers",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name="uq_publisher_tokens_token_hash"),
    )
    op.create_index(
        "ix_publisher_tokens_publisher", "publisher_tokens", ["publisher_id", "created_at"]
    )
    # The hash moves as it is (a token is never stored, only its SHA-256): every publisher's
    # token answers as before, now under a tokenId, dated from the publisher's creation.
    op.execute(
        "INSERT INTO publisher_tokens (id, publisher_id, token_hash, created_at)"
        " SELECT gen_random_uuid(), id, token_hash, created_at FROM publishers"
    )
    op.drop_constraint("uq_publishers_token_hash", "publishers", type_="unique")
    op.drop_column("publishers", "token_hash")


def downgrade() -> None:
    # One token per publisher again: its oldest one keeps working, the others stop. A publisher
    # whose tokens were all revoked gets a hash no token has (none can be found for it).
    op.add_column("publishers", sa.Column("token_hash", sa.String(64), nullable=True))
    op.execute(
        "UPDATE publishers AS p SET token_hash = t.token_hash FROM ("
        " SELECT DISTINCT ON (publisher_id) publisher_id, token_hash FROM publisher_tokens"
        " ORDER BY publisher_id, created_at, id) AS t"
        " WHERE t.publisher_id = p.id"
    )
    op.execute(
        "UPDATE publishers SET token_hash = md5(random()::text) || md5(random()::text)"
        " WHERE token_hash IS NULL"
    )
    op.alter_column("publishers", "token_hash", nullable=False)
    op.create_unique_constraint("uq_publishers_token_hash", "publishers", ["token_hash"])
    op.drop_index("ix_publisher_tokens_publisher", table_name="publisher_tokens")
    op.drop_table("publisher_tokens")
