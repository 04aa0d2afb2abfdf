"""tenant column on every table, idempotency key for sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

``tenant`` is filled by the database from the transaction's ``bughive.tenant`` setting (or
'default'), so row-level security policies (multi-tenant mode) and unique keys can be scoped to
a tenant without any repository passing it. ``crawl_sessions.idempotency_key`` lets an agent
retry ``create_session`` after a reconnect without creating a second session.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_DEFAULT = "coalesce(nullif(current_setting('bughive.tenant', true), ''), 'default')"
TABLES = ("crawl_sessions", "pages", "bugs", "bug_occurrences")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column(
                "tenant",
                sa.String(length=100),
                server_default=sa.text(TENANT_DEFAULT),
                nullable=False,
            ),
        )
    op.create_index("ix_crawl_sessions_tenant", "crawl_sessions", ["tenant"])
    op.add_column(
        "crawl_sessions", sa.Column("idempotency_key", sa.String(length=255), nullable=True)
    )
    op.create_index(
        "uq_crawl_sessions_tenant_idempotency_key",
        "crawl_sessions",
        ["tenant", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_crawl_sessions_tenant_idempotency_key", table_name="crawl_sessions")
    op.drop_column("crawl_sessions", "idempotency_key")
    op.drop_index("ix_crawl_sessions_tenant", table_name="crawl_sessions")
    for table in reversed(TABLES):
        op.drop_column(table, "tenant")
