"""A job's holder may be as long as a host name: `jobs.locked_by` becomes text.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A holder is `host:pid:…`. A host name may be 253 characters (a fully qualified one; a pod's
    # is up to 63), so varchar(64) refused every claim of a worker on such a host. From varchar to
    # text PostgreSQL rewrites nothing: it is a change of the catalog only.
    op.alter_column("jobs", "locked_by", type_=sa.Text(), existing_type=sa.String(64))


def downgrade() -> None:
    op.execute("UPDATE jobs SET locked_by = left(locked_by, 64)")
    op.alter_column("jobs", "locked_by", type_=sa.String(64), existing_type=sa.Text())
