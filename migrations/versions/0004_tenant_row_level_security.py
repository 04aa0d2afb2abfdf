"""row-level security: each tenant sees and writes only its own rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Every tenant table gets the ``tenant_isolation`` policy: a row is visible, updatable and
insertable only when its ``tenant`` equals the transaction's ``bughive.tenant`` setting (see
``db.connection.tenancy``). With no setting (or an empty one) the comparison is NULL: no rows, no writes.

The policy binds every role except the tables' owner, superusers and ``BYPASSRLS`` roles. It is
deliberately not FORCEd: single-tenant deployments (and migrations) connect as the owner and are
unaffected; multi-tenant deployments connect the server as a separate runtime role.

Foreign-key checks bypass row-level security, so on its own the policy would let one tenant
insert a row that points at another tenant's session, page or bug. The ``WITH CHECK`` side
therefore also requires every referenced parent to be visible — i.e. of the same tenant.
(``pages.parent_page_id`` cannot be checked this way: a policy may not query its own table;
the repository checks the parent belongs to the same session.)
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_TENANT = "nullif(current_setting('bughive.tenant', true), '')"
POLICY = "tenant_isolation"
# table → (foreign-key column, parent table) that a new or changed row must point into.
PARENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "crawl_sessions": (),
    "pages": (("session_id", "crawl_sessions"),),
    "bugs": (("session_id", "crawl_sessions"), ("page_id", "pages")),
    "bug_occurrences": (
        ("bug_id", "bugs"),
        ("session_id", "crawl_sessions"),
        ("page_id", "pages"),
    ),
}


def _with_check(table: str) -> str:
    conditions = [f"tenant = {CURRENT_TENANT}"]
    conditions += [
        f"EXISTS (SELECT 1 FROM {parent} AS parent WHERE parent.id = {table}.{column})"
        for column, parent in PARENTS[table]
    ]
    return " AND ".join(conditions)


def upgrade() -> None:
    for table in PARENTS:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} "
            f"USING (tenant = {CURRENT_TENANT}) WITH CHECK ({_with_check(table)})"
        )


def downgrade() -> None:
    for table in reversed(PARENTS):
        op.execute(f"DROP POLICY {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
