"""a start-up check of stored credentials that row-level security does not blind

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

At start the server refuses to run when crawl sessions hold encrypted site credentials that no
configured key opens (db.repositories.credentials.check_stored_credentials). In multi-tenant mode it connects as
a runtime role bound by the tenant policies (revision 0004): outside any tenant it sees no rows,
so the check passed whatever was stored. ``bughive_stored_credentials()`` answers the check's
question — how many sessions hold an encrypted password, and the newest such token — as the
tables' owner (``SECURITY DEFINER``, which the policies do not bind), for every tenant, and
nothing more: the token is ciphertext under the server's own key. Only roles granted
``EXECUTE`` may call it (``bughive-mcp grant-runtime-role`` grants it).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "bughive_stored_credentials()"


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION bughive_stored_credentials(OUT sessions bigint, OUT newest_token text)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$
            SELECT count(*),
                   (array_agg(token ORDER BY created_at DESC))[1]
            FROM (
                SELECT s.config -> 'credentials' ->> 'password_encrypted' AS token, s.created_at
                FROM @schema@.crawl_sessions AS s
            ) AS stored
            WHERE token IS NOT NULL
        $$
        """.replace("@schema@", _schema())
    )
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {FUNCTION}")


def _schema() -> str:
    """The schema the migration runs in, quoted (the function must not follow search_path)."""
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar()
    return '"' + str(name).replace('"', '""') + '"'
