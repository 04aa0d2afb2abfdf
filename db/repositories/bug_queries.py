"""What triage reads about bugs: one bug, the lists (filtered, most urgent or most confident
first), the report's bug table and the statistics. Each one statement, run in autocommit;
aggregates run in SQL in a single pass, nothing here loads rows to count them."""

import functools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from db.bug_schemas import BugList, BugPublic, BugStatistics, ReportBug
from db.connection.unit_of_work import reads
from db.enums import BugCategory, BugPriority, BugStatus
from db.errors import NotFound
from db.repositories.base import Repository, count_filters_sql, counts_from_row, listed_rows
from db.repositories.bug_input import confidence_of, enum_value
from db.repositories.statements import Statement, family


def _most_urgent(bug: str = "") -> str:
    """Most urgent first (critical → low), then oldest, as SQL; ``bug``: the bugs table's
    alias with its dot, in a join."""
    ranks = " ".join(f"WHEN '{p.value}' THEN {p.rank}" for p in BugPriority)
    return f"CASE {bug}priority {ranks} ELSE {len(BugPriority)} END"


# The orders of the bug lists, as SQL; each ends with the id, so pages never overlap.
_MOST_CONFIDENT = "confidence DESC, created_at, id"
_MOST_URGENT = f"{_most_urgent()}, created_at, id"
_NOT_DISMISSED = f"status <> '{BugStatus.DISMISSED.value}'"

# The report's bug table in one statement: the session check, the count of
# its open bugs, and the first {limit} of them, most urgent then most confident first, each
# with the URL of the page it was first found on.
_REPORT_ROWS = f"""
SELECT listed.total, item.*
FROM crawl_sessions AS crawl
CROSS JOIN LATERAL (
    SELECT count(*) AS total FROM bugs WHERE session_id = crawl.id AND {_NOT_DISMISSED}
) AS listed
LEFT JOIN LATERAL (
    SELECT bug.id, bug.title, bug.category, bug.priority, bug.status, bug.confidence,
        bug.occurrences, bug.linear_issue_url, page.url AS page_url
    FROM bugs AS bug JOIN pages AS page ON page.id = bug.page_id
    WHERE bug.session_id = crawl.id AND bug.{_NOT_DISMISSED}
    ORDER BY {_most_urgent("bug.")}, bug.confidence DESC, bug.created_at, bug.id
    LIMIT {{limit}}
) AS item ON true
WHERE crawl.id = :session_id
"""


@functools.lru_cache(maxsize=16)
def report_rows_statement(limit: int) -> Statement:
    return Statement(
        f"bugs report rows {limit}",
        _REPORT_ROWS.format(limit=int(limit)),
        writes=False,
        returns=ReportBug,
        register=False,
    )


family("bugs report rows", lambda: report_rows_statement(200))


# get_bug_statistics in one statement. An aggregate without GROUP BY always returns its one
# row; ``known`` is NULL when there is no such session. The pass filters on ``session_id``
# itself (not through a join), so it is planned for that session.
BUG_STATISTICS = Statement(
    "bugs statistics",
    f"""
SELECT (SELECT true FROM crawl_sessions WHERE id = :session_id) AS known,
    count(*) AS total, coalesce(sum(occurrences), 0) AS occurrences,
    avg(confidence) AS average_confidence,
    {count_filters_sql("priority", BugPriority)},
    {count_filters_sql("category", BugCategory)},
    {count_filters_sql("status", BugStatus)}
FROM bugs WHERE session_id = :session_id
""",
    writes=False,
)


class BugQueries(Repository):
    @reads
    async def get(self, bug_id: uuid.UUID) -> BugPublic:
        return await self._fetch_one(BugPublic, "bugs", bug_id)

    async def _bugs(
        self,
        session_id: uuid.UUID,
        conditions: Sequence[str],
        arguments: Mapping[str, Any],
        order_by: str,
        skip: int,
        limit: int,
    ) -> BugList:
        items, page = await self._list(
            BugPublic,
            "bugs",
            session_id=session_id,
            conditions=conditions,
            arguments=arguments,
            order_by=order_by,
            skip=skip,
            limit=limit,
        )
        return BugList(items=items, **page.model_dump())

    @reads
    async def get_high_confidence_bugs(
        self, session_id: uuid.UUID, min_confidence: float = 0.8, skip: int = 0, limit: int = 50
    ) -> BugList:
        """Bugs at or above ``min_confidence`` that are not dismissed, most confident first."""
        threshold = confidence_of(min_confidence, field="min_confidence")
        conditions = ("confidence >= :min_confidence", _NOT_DISMISSED)
        arguments = {"min_confidence": threshold}
        return await self._bugs(session_id, conditions, arguments, _MOST_CONFIDENT, skip, limit)

    @reads
    async def get_critical_bugs(
        self, session_id: uuid.UUID, skip: int = 0, limit: int = 50
    ) -> BugList:
        """Critical bugs that are not dismissed, most confident first."""
        conditions = (f"priority = '{BugPriority.CRITICAL.value}'", _NOT_DISMISSED)
        return await self._bugs(session_id, conditions, {}, _MOST_CONFIDENT, skip, limit)

    @reads
    async def get_session_bugs(
        self,
        session_id: uuid.UUID,
        status: BugStatus | str | None = None,
        priority: BugPriority | str | None = None,
        category: BugCategory | str | None = None,
        skip: int = 0,
        limit: int = 20,
    ) -> BugList:
        """A session's bugs, filtered, most urgent first (critical → low), then oldest first."""
        conditions: list[str] = []
        arguments: dict[str, str] = {}
        filters = (
            ("status", BugStatus, status),
            ("priority", BugPriority, priority),
            ("category", BugCategory, category),
        )
        for column, enum, value in filters:
            if value is not None:
                arguments[column] = enum_value(column, enum, value)
                conditions.append(f"{column} = :{column}")
        return await self._bugs(session_id, conditions, arguments, _MOST_URGENT, skip, limit)

    @reads
    async def get_report_rows(
        self, session_id: uuid.UUID, limit: int = 200
    ) -> tuple[list[ReportBug], int]:
        """The session's bugs that are not dismissed, most urgent first, each with the URL
        of the page it was first found on; and how many there are in all. One statement
        (:func:`report_rows_statement`)."""
        rows = await report_rows_statement(limit).fetch(self.session, session_id=session_id)
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        return listed_rows(rows, ReportBug, 0, limit)[0], int(rows[0]["total"])

    @reads
    async def get_bug_statistics(self, session_id: uuid.UUID) -> BugStatistics:
        """Totals by priority, category and status plus the average confidence, computed in
        one SQL pass (``count(*) FILTER``) over the session's bugs.

        One statement (:data:`BUG_STATISTICS`): the session check and the pass."""
        row = await BUG_STATISTICS.fetch_aggregate(self.session, session_id=session_id)
        if row is None or not row["known"]:
            raise NotFound("crawl session", session_id, field="session_id")
        average = row["average_confidence"]
        return BugStatistics(
            session_id=session_id,
            total=int(row["total"]),
            total_occurrences=int(row["occurrences"]),
            by_priority=counts_from_row(row, "priority", BugPriority),
            by_category=counts_from_row(row, "category", BugCategory),
            by_status=counts_from_row(row, "status", BugStatus),
            average_confidence=None if average is None else round(float(average), 4),
        )
