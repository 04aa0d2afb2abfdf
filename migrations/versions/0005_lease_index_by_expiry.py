"""lease index keyed by the lease itself, not by status

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

``ix_pages_leases`` was partial on ``status = 'crawling'``. A query for expired leases then had
to say ``status = 'crawling'`` to match it — and that same condition lets the planner serve it
from the seed's index on ``status`` instead. It did exactly that whenever statistics were taken
with no page in flight (every fresh crawl until autovacuum re-analyzed): each claim walked
every in-flight page of the table to find the expired ones (docs/benchmarks.md).

The CHECK ``lease_iff_crawling`` makes "has a lease" and "is crawling" the same thing, so the
index can be partial on ``lease_expires_at IS NOT NULL`` instead: ``lease_expires_at < now()``
alone implies that predicate, no status condition is needed, and no other index competes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_pages_leases", table_name="pages")
    op.create_index(
        "ix_pages_leases",
        "pages",
        ["session_id", "lease_expires_at"],
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_pages_leases", table_name="pages")
    op.create_index(
        "ix_pages_leases",
        "pages",
        ["session_id", "lease_expires_at"],
        postgresql_where=sa.text("status = 'crawling'"),
    )
