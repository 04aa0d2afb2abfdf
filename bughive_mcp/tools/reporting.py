"""The session report as a tool (for agents that do not read resources)."""

from typing import Literal

from pydantic import BaseModel, Field

from bughive_mcp.report import SessionReport, build_report, render_markdown
from bughive_mcp.state import AppContext, in_unit_of_work
from bughive_mcp.tools.params import SessionId
from bughive_mcp.tools.registry import tool


def _absent(value: object) -> bool:
    return value is None


class ExportedReport(BaseModel):
    """One of ``markdown`` and ``report``, the other left out (not sent as null: the agent
    pays for every byte and should not wonder what a null report means)."""

    format: Literal["markdown", "json"]
    markdown: str | None = Field(
        default=None, exclude_if=_absent, description="The report, when format is markdown."
    )
    report: SessionReport | None = Field(
        default=None, exclude_if=_absent, description="The report data, when format is json."
    )


@tool("Export session report", toolset="reporting", read_only=True)
async def export_session_report(
    session_id: SessionId, ctx: AppContext, format: Literal["markdown", "json"] = "markdown"
) -> ExportedReport:
    """The crawl's report: coverage, pages by status, bugs by priority and category, the open
    bugs (most urgent first, with pages and Linear links), cost and duration. markdown for
    people, json for programs. Same as resource bughive://sessions/{id}/report."""

    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    report = await in_unit_of_work(ctx, lambda s: build_report(s, session_id, progress))
    if format == "json":
        return ExportedReport(format=format, report=report)
    return ExportedReport(format=format, markdown=render_markdown(report))
