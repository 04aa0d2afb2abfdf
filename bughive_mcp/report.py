"""The session report: one data model (``SessionReport``) built from the repositories, and its
Markdown rendering for humans. Used by the ``export_session_report`` tool, the
``bughive://sessions/{id}/report`` resource and ``bughive-mcp report``.

Titles and URLs in the report come from crawled websites: they are rendered as inert text
(table-cell escaping, no raw HTML, control and bidi characters removed).
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from db.bug_schemas import BugStatistics, ReportBug
from db.connection.unit_of_work import UnitOfWork
from db.enums import BugCategory, BugPriority, PageStatus
from db.repositories import BugRepository, CrawlSessionRepository
from db.schemas import SessionStatistics

MAX_REPORT_BUGS = 200

Progress = Callable[[float, float, str], Awaitable[None]]


class SessionReport(BaseModel):
    generated_at: datetime
    statistics: SessionStatistics
    bug_statistics: BugStatistics
    bugs: list[ReportBug] = Field(description="Open bugs (not dismissed), most urgent first.")
    bugs_total: int = Field(description="Open bugs in all; more than listed when truncated.")
    bugs_truncated: bool


async def build_report(
    session: UnitOfWork, session_id: uuid.UUID, progress: Progress | None = None
) -> SessionReport:
    """Three reads, each one statement in autocommit: session statistics, bug statistics, the
    bug table (with page URLs)."""

    async def step(done: int, message: str) -> None:
        if progress is not None:
            await progress(done, 3, message)

    statistics = await CrawlSessionRepository(session).get_session_statistics(session_id)
    await step(1, "session statistics")
    bugs_repo = BugRepository(session)
    bug_statistics = await bugs_repo.get_bug_statistics(session_id)
    await step(2, "bug statistics")
    bugs, total = await bugs_repo.get_report_rows(session_id, MAX_REPORT_BUGS)
    await step(3, "bug table")
    return SessionReport(
        generated_at=datetime.now(UTC),
        statistics=statistics,
        bug_statistics=bug_statistics,
        bugs=bugs,
        bugs_total=total,
        bugs_truncated=total > len(bugs),
    )


_INVISIBLE = dict.fromkeys(
    [
        *range(0x00, 0x20),
        0x7F,
        0x200B,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)


def cell(text: object) -> str:
    """Untrusted text as one inert Markdown table cell."""
    cleaned = str(text).translate(_INVISIBLE)
    for char in "\\|`*_[]<>#":
        cleaned = cleaned.replace(char, "\\" + char)
    return cleaned[:300]


def render_markdown(report: SessionReport) -> str:
    stats = report.statistics
    session = stats.session
    duration = (
        "not started" if stats.duration_seconds is None else f"{stats.duration_seconds:.0f} s"
    )
    lines = [
        f"# Crawl report: {cell(session.base_url)}",
        "",
        f"- Session: `{session.id}` — status **{session.status}**",
        f"- Coverage: {stats.pages_total} pages known, {session.pages_crawled} analyzed "
        f"({stats.crawl_progress:.0%} finished), {stats.pages_leased} being crawled",
        f"- Bugs: {report.bug_statistics.total} distinct "
        f"({report.bug_statistics.total_occurrences} occurrences)",
        f"- Cost: ${stats.total_cost:.4f}",
        f"- Duration: {duration}",
        f"- Generated: {report.generated_at.isoformat(timespec='seconds')}",
        "",
        "## Pages by status",
        "",
        "| status | pages |",
        "|---|---:|",
        *(f"| {status} | {stats.pages_by_status[status]} |" for status in PageStatus),
        "",
        "## Bugs by priority",
        "",
        "| priority | bugs |",
        "|---|---:|",
        *(
            f"| {priority} | {report.bug_statistics.by_priority[priority]} |"
            for priority in BugPriority
        ),
        "",
        "## Bugs by category",
        "",
        "| category | bugs |",
        "|---|---:|",
        *(
            f"| {category} | {report.bug_statistics.by_category[category]} |"
            for category in BugCategory
        ),
        "",
        "## Open bugs",
        "",
    ]
    if not report.bugs:
        lines.append("No open bugs.")
    else:
        lines += [
            "| priority | category | title | page | status | confidence | seen on | Linear |",
            "|---|---|---|---|---|---:|---:|---|",
        ]
        for bug in report.bugs:
            linear = cell(bug.linear_issue_url) if bug.linear_issue_url else "—"
            lines.append(
                f"| {bug.priority} | {bug.category} | {cell(bug.title)} | {cell(bug.page_url)} "
                f"| {bug.status} | {bug.confidence:.2f} | {bug.occurrences} | {linear} |"
            )
        if report.bugs_truncated:
            lines += [
                "",
                f"Showing the {len(report.bugs)} most urgent of {report.bugs_total} open bugs; "
                "list the rest with get_session_bugs.",
            ]
    return "\n".join(lines) + "\n"
