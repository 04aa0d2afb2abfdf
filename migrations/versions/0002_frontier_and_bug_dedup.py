"""crawl frontier leases and bug deduplication

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Adds what many concurrent crawler workers need: a lease per page in 'crawling' (claim token,
claim time, expiry, attempts) with partial indexes that serve the claim and the lease reaper,
and bug fingerprints with an occurrences table. The seed's columns and indexes are untouched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("pages", sa.Column("claim_token", sa.UUID(), nullable=True))
    op.add_column("pages", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("pages", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("pages", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    # Pages already being crawled get a lease that is already expired: the next claim
    # requeues them instead of stranding them.
    op.execute(
        "UPDATE pages SET claim_token = gen_random_uuid(), claimed_at = updated_at,"
        " lease_expires_at = now(), attempts = 1 WHERE status = 'crawling'"
    )
    op.create_check_constraint(op.f("ck_pages_attempts_non_negative"), "pages", "attempts >= 0")
    op.create_check_constraint(
        op.f("ck_pages_lease_iff_crawling"),
        "pages",
        "(status = 'crawling') = (claim_token IS NOT NULL AND lease_expires_at IS NOT NULL)",
    )
    op.create_index(
        "ix_pages_frontier",
        "pages",
        ["session_id", "depth", "discovered_at", "id"],
        postgresql_where=sa.text("status = 'discovered'"),
    )
    op.create_index(
        "ix_pages_leases",
        "pages",
        ["session_id", "lease_expires_at"],
        postgresql_where=sa.text("status = 'crawling'"),
    )

    op.add_column("bugs", sa.Column("fingerprint", sa.String(length=64), nullable=True))
    op.add_column(
        "bugs", sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False)
    )
    op.create_check_constraint(op.f("ck_bugs_occurrences_positive"), "bugs", "occurrences >= 1")
    op.create_index(
        "uq_bugs_session_id_fingerprint", "bugs", ["session_id", "fingerprint"], unique=True
    )
    op.create_table(
        "bug_occurrences",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("bug_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("page_id", sa.UUID(), nullable=False),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bug_id"], ["bugs.id"], name=op.f("fk_bug_occurrences_bug_id_bugs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["pages.id"],
            name=op.f("fk_bug_occurrences_page_id_pages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["crawl_sessions.id"],
            name=op.f("fk_bug_occurrences_session_id_crawl_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bug_occurrences")),
    )
    op.create_index("ix_bug_occurrences_bug_id", "bug_occurrences", ["bug_id"])
    op.create_index("ix_bug_occurrences_page_id", "bug_occurrences", ["page_id"])
    op.create_index("ix_bug_occurrences_session_id", "bug_occurrences", ["session_id"])
    op.create_index(
        "uq_bug_occurrences_bug_id_page_id", "bug_occurrences", ["bug_id", "page_id"], unique=True
    )
    # Existing bugs each count as one occurrence on their page.
    op.execute(
        "INSERT INTO bug_occurrences (bug_id, session_id, page_id, evidence, created_at)"
        " SELECT id, session_id, page_id, evidence, created_at FROM bugs"
    )


def downgrade() -> None:
    op.drop_table("bug_occurrences")
    op.drop_index("uq_bugs_session_id_fingerprint", table_name="bugs")
    op.drop_constraint(op.f("ck_bugs_occurrences_positive"), "bugs", type_="check")
    op.drop_column("bugs", "occurrences")
    op.drop_column("bugs", "fingerprint")
    op.drop_index("ix_pages_leases", table_name="pages")
    op.drop_index("ix_pages_frontier", table_name="pages")
    op.drop_constraint(op.f("ck_pages_lease_iff_crawling"), "pages", type_="check")
    op.drop_constraint(op.f("ck_pages_attempts_non_negative"), "pages", type_="check")
    # Leases cannot be represented any more: crawling pages go back to the frontier.
    op.execute("UPDATE pages SET status = 'discovered' WHERE status = 'crawling'")
    op.drop_column("pages", "attempts")
    op.drop_column("pages", "lease_expires_at")
    op.drop_column("pages", "claimed_at")
    op.drop_column("pages", "claim_token")
