"""Several apps per publisher: `storekit2_apps`, and the app each purchase and sync belongs to.

Every existing integration's app moves, unchanged (its key stays as it was sealed: the secret box
opens the older format too), into `storekit2_apps`; `storekit2_integrations` keeps what belongs
to the publisher (active, its timestamps). An integration that was switched off keeps its app and
stays off. Subscriptions learn their app: before this revision a publisher had one, so each takes
its publisher's bundle id. Syncs keep NULL (any app) until their next finalize.

Downgrade: each publisher keeps its first app (by creation); a publisher with none loses its
integration row; the other apps are dropped. A key sealed by this revision's code cannot be read by
the code of the revision before (it reads only the older format): put the app again after a
downgrade.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
APP_COLUMNS = "bundle_id, app_apple_id, issuer_id, key_id, private_key_encrypted, environment"
MOVE_APPS = f"""
INSERT INTO storekit2_apps (publisher_id, {APP_COLUMNS}, created_at, updated_at)
SELECT publisher_id, {APP_COLUMNS}, created_at, updated_at FROM storekit2_integrations
"""  # noqa: S608 (constants)
# 0001 named it before the naming convention's prefix was left out of constraint names.
OLD_ENVIRONMENT_CHECK = "ck_storekit2_integrations_ck_storekit2_integrations_environment"


def upgrade() -> None:
    op.create_table(
        "storekit2_apps",
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("bundle_id", sa.String(155), nullable=False),
        sa.Column("app_apple_id", sa.BigInteger(), nullable=True),
        sa.Column("issuer_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("publisher_id", "bundle_id", name="pk_storekit2_apps"),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["storekit2_integrations.publisher_id"],
            name="fk_storekit2_apps_publisher_id_storekit2_integrations",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("environment IN ('Production', 'Sandbox', 'Auto')", name="environment"),
    )
    op.execute(MOVE_APPS)
    for column in APP_COLUMNS.split(", "):  # the environment's check goes with its column
        op.drop_column("storekit2_integrations", column)
    op.add_column("subscriptions", sa.Column("bundle_id", sa.String(155), nullable=True))
    op.execute(
        "UPDATE subscriptions AS s SET bundle_id = a.bundle_id"
        " FROM storekit2_apps AS a WHERE a.publisher_id = s.publisher_id"
    )
    op.add_column("synchronizations", sa.Column("bundle_id", sa.String(155), nullable=True))


def downgrade() -> None:
    op.drop_column("synchronizations", "bundle_id")
    op.drop_column("subscriptions", "bundle_id")
    op.add_column("storekit2_integrations", sa.Column("bundle_id", sa.String(155)))
    op.add_column("storekit2_integrations", sa.Column("app_apple_id", sa.BigInteger()))
    op.add_column("storekit2_integrations", sa.Column("issuer_id", sa.String(64)))
    op.add_column("storekit2_integrations", sa.Column("key_id", sa.String(32)))
    op.add_column("storekit2_integrations", sa.Column("private_key_encrypted", sa.LargeBinary()))
    op.add_column("storekit2_integrations", sa.Column("environment", sa.String(16)))
    op.execute(
        "UPDATE storekit2_integrations AS i SET bundle_id = a.bundle_id,"
        " app_apple_id = a.app_apple_id, issuer_id = a.issuer_id, key_id = a.key_id,"
        " private_key_encrypted = a.private_key_encrypted, environment = a.environment"
        " FROM (SELECT DISTINCT ON (publisher_id) * FROM storekit2_apps"
        "       ORDER BY publisher_id, created_at, bundle_id) AS a"
        " WHERE a.publisher_id = i.publisher_id"
    )
    op.execute("DELETE FROM storekit2_integrations WHERE bundle_id IS NULL")
    for column in APP_COLUMNS.split(", "):
        if column != "app_apple_id":
            op.alter_column("storekit2_integrations", column, nullable=False)
    op.create_check_constraint(
        op.f(OLD_ENVIRONMENT_CHECK),
        "storekit2_integrations",
        "environment IN ('Production', 'Sandbox', 'Auto')",
    )
    op.drop_table("storekit2_apps")
