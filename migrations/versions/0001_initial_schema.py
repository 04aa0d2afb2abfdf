"""initial schema: crawl_sessions, pages, bugs

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 17:13:28.310075
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crawl_sessions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages_discovered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pages_crawled", sa.Integer(), server_default="0", nullable=False),
        sa.Column("bugs_found", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "total_cost", sa.Numeric(precision=10, scale=4), server_default="0", nullable=False
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')",
            name=op.f("ck_crawl_sessions_status"),
        ),
        sa.CheckConstraint(
            "pages_discovered >= 0 AND pages_crawled >= 0 AND bugs_found >= 0",
            name=op.f("ck_crawl_sessions_counters_non_negative"),
        ),
        sa.CheckConstraint(
            "total_cost >= 0", name=op.f("ck_crawl_sessions_total_cost_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crawl_sessions")),
    )
    op.create_index(
        op.f("ix_crawl_sessions_base_url"), "crawl_sessions", ["base_url"], unique=False
    )
    op.create_index(
        op.f("ix_crawl_sessions_base_url_status"),
        "crawl_sessions",
        ["base_url", "status"],
        unique=False,
    )
    op.create_index(op.f("ix_crawl_sessions_status"), "crawl_sessions", ["status"], unique=False)
    op.create_index(
        op.f("ix_crawl_sessions_status_created_at"),
        "crawl_sessions",
        ["status", "created_at"],
        unique=False,
    )
    op.create_table(
        "pages",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("parent_page_id", sa.UUID(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="discovered", nullable=False),
        sa.Column("depth", sa.Integer(), server_default="0", nullable=False),
        sa.Column("screenshot_url", sa.String(length=2048), nullable=True),
        sa.Column("analysis_result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_time_ms", sa.Integer(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("content_length", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "discovered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("crawled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('discovered', 'crawling', 'analyzed', 'error')",
            name=op.f("ck_pages_status"),
        ),
        sa.CheckConstraint(
            "(response_time_ms IS NULL OR response_time_ms >= 0) AND (content_length IS NULL OR content_length >= 0)",
            name=op.f("ck_pages_measures_non_negative"),
        ),
        sa.CheckConstraint("depth >= 0", name=op.f("ck_pages_depth_non_negative")),
        sa.CheckConstraint(
            "status_code IS NULL OR status_code BETWEEN 100 AND 599",
            name=op.f("ck_pages_status_code_range"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_page_id"],
            ["pages.id"],
            name=op.f("fk_pages_parent_page_id_pages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["crawl_sessions.id"],
            name=op.f("fk_pages_session_id_crawl_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
    )
    op.create_index(op.f("ix_pages_crawled_at"), "pages", ["crawled_at"], unique=False)
    op.create_index(op.f("ix_pages_depth"), "pages", ["depth"], unique=False)
    op.create_index(op.f("ix_pages_parent_page_id"), "pages", ["parent_page_id"], unique=False)
    op.create_index(op.f("ix_pages_session_id"), "pages", ["session_id"], unique=False)
    op.create_index(
        op.f("ix_pages_session_id_depth"), "pages", ["session_id", "depth"], unique=False
    )
    op.create_index(
        op.f("ix_pages_session_id_status"), "pages", ["session_id", "status"], unique=False
    )
    op.create_index(op.f("ix_pages_status"), "pages", ["status"], unique=False)
    op.create_index(op.f("ix_pages_status_code"), "pages", ["status_code"], unique=False)
    op.create_index(op.f("ix_pages_url"), "pages", ["url"], unique=False)
    op.create_index("uq_pages_url_session_id", "pages", ["url", "session_id"], unique=True)
    op.create_table(
        "bugs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("page_id", sa.UUID(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "steps_to_reproduce",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="detected", nullable=False),
        sa.Column("linear_issue_id", sa.String(length=100), nullable=True),
        sa.Column("linear_issue_url", sa.String(length=500), nullable=True),
        sa.Column("expected_behavior", sa.Text(), nullable=True),
        sa.Column("actual_behavior", sa.Text(), nullable=True),
        sa.Column("affected_users", sa.String(length=255), nullable=True),
        sa.Column("browser_info", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("dismissed_reason", sa.Text(), nullable=True),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('ui_ux', 'data', 'edge_case', 'performance', 'security')",
            name=op.f("ck_bugs_category"),
        ),
        sa.CheckConstraint(
            "priority IN ('critical', 'high', 'medium', 'low')", name=op.f("ck_bugs_priority")
        ),
        sa.CheckConstraint(
            "status IN ('detected', 'validated', 'reported', 'dismissed')",
            name=op.f("ck_bugs_status"),
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_bugs_confidence_range")
        ),
        sa.ForeignKeyConstraint(
            ["page_id"], ["pages.id"], name=op.f("fk_bugs_page_id_pages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["crawl_sessions.id"],
            name=op.f("fk_bugs_session_id_crawl_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bugs")),
    )
    op.create_index(op.f("ix_bugs_category"), "bugs", ["category"], unique=False)
    op.create_index(op.f("ix_bugs_confidence"), "bugs", ["confidence"], unique=False)
    op.create_index(op.f("ix_bugs_created_at"), "bugs", ["created_at"], unique=False)
    op.create_index(op.f("ix_bugs_linear_issue_id"), "bugs", ["linear_issue_id"], unique=False)
    op.create_index(op.f("ix_bugs_page_id"), "bugs", ["page_id"], unique=False)
    op.create_index(op.f("ix_bugs_page_id_priority"), "bugs", ["page_id", "priority"], unique=False)
    op.create_index(op.f("ix_bugs_priority"), "bugs", ["priority"], unique=False)
    op.create_index(op.f("ix_bugs_reported_at"), "bugs", ["reported_at"], unique=False)
    op.create_index(op.f("ix_bugs_session_id"), "bugs", ["session_id"], unique=False)
    op.create_index(
        op.f("ix_bugs_session_id_category"), "bugs", ["session_id", "category"], unique=False
    )
    op.create_index(
        op.f("ix_bugs_session_id_priority"), "bugs", ["session_id", "priority"], unique=False
    )
    op.create_index(
        op.f("ix_bugs_session_id_status"), "bugs", ["session_id", "status"], unique=False
    )
    op.create_index(op.f("ix_bugs_status"), "bugs", ["status"], unique=False)
    op.create_index(op.f("ix_bugs_title"), "bugs", ["title"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_bugs_title"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_status"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_session_id_status"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_session_id_priority"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_session_id_category"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_session_id"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_reported_at"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_priority"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_page_id_priority"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_page_id"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_linear_issue_id"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_created_at"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_confidence"), table_name="bugs")
    op.drop_index(op.f("ix_bugs_category"), table_name="bugs")
    op.drop_table("bugs")
    op.drop_index("uq_pages_url_session_id", table_name="pages")
    op.drop_index(op.f("ix_pages_url"), table_name="pages")
    op.drop_index(op.f("ix_pages_status_code"), table_name="pages")
    op.drop_index(op.f("ix_pages_status"), table_name="pages")
    op.drop_index(op.f("ix_pages_session_id_status"), table_name="pages")
    op.drop_index(op.f("ix_pages_session_id_depth"), table_name="pages")
    op.drop_index(op.f("ix_pages_session_id"), table_name="pages")
    op.drop_index(op.f("ix_pages_parent_page_id"), table_name="pages")
    op.drop_index(op.f("ix_pages_depth"), table_name="pages")
    op.drop_index(op.f("ix_pages_crawled_at"), table_name="pages")
    op.drop_table("pages")
    op.drop_index(op.f("ix_crawl_sessions_status_created_at"), table_name="crawl_sessions")
    op.drop_index(op.f("ix_crawl_sessions_status"), table_name="crawl_sessions")
    op.drop_index(op.f("ix_crawl_sessions_base_url_status"), table_name="crawl_sessions")
    op.drop_index(op.f("ix_crawl_sessions_base_url"), table_name="crawl_sessions")
    op.drop_table("crawl_sessions")
