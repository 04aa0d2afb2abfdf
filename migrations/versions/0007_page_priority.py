"""pages carry a crawl priority; the frontier hands out the highest first

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Login and checkout should not wait behind the footer links (issues 18 and 19): a link can be
discovered with a priority (-10 … 10, default 0), and claims and get_pages_to_crawl order by
priority (highest first), then depth, then age. ``ix_pages_frontier`` is rebuilt in that order so
the claim stays an index scan of the session's discovered pages. ``ADD COLUMN … DEFAULT 0`` is a
catalogue change on PostgreSQL 11+ (no table rewrite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FRONTIER = "status = 'discovered'"


def upgrade() -> None:
    op.add_column(
        "pages", sa.Column("priority", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_pages_priority_range"), "pages", "priority BETWEEN -10 AND 10"
    )
    op.drop_index("ix_pages_frontier", table_name="pages")
    op.create_index(
        "ix_pages_frontier",
        "pages",
        ["session_id", sa.text("priority DESC"), "depth", "discovered_at", "id"],
        postgresql_where=sa.text(FRONTIER),
    )


def downgrade() -> None:
    op.drop_index("ix_pages_frontier", table_name="pages")
    op.create_index(
        "ix_pages_frontier",
        "pages",
        ["session_id", "depth", "discovered_at", "id"],
        postgresql_where=sa.text(FRONTIER),
    )
    op.drop_constraint(op.f("ck_pages_priority_range"), "pages", type_="check")
    op.drop_column("pages", "priority")
