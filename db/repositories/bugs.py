"""Bugs found by the agent: filing (with evidence and steps), the detected → validated →
reported life cycle (any → dismissed), and the queries triage needs. Aggregates run in SQL in a
single pass; nothing here loads rows to count them."""

import functools
import json
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func

from db.database import remember_transaction_id
from db.driver import driver_connection, fetch_aggregate
from db.enums import BugCategory, BugPriority, BugStatus
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.fingerprint import bug_fingerprint
from db.models import Bug
from db.repositories.base import Repository, count_filters_sql, counts_from_row, listed_rows
from db.schemas import (
    BugFiled,
    BugList,
    BugPublic,
    BugStatistics,
    Evidence,
    ReportBug,
)

MAX_STEPS = 50
MAX_STEP_LENGTH = 1_000
MAX_EVIDENCE = 20

# create_bug's statements (on the driver path, db.driver). The page's session and URL (the
# fingerprint needs the URL):
PAGE_OF_BUG = "SELECT session_id, url FROM pages WHERE id = $1"
# Then the filing: the bug is inserted, or — known fingerprint — the existing row is locked and
# returned (the no-op DO UPDATE) with ``created`` false; a new bug raises the session's
# bugs_found. The row comes back whole with the transaction's id, so nothing is read back and
# the unit of work need not ask for the id.
FILE_BUG = """
WITH bug AS (
    INSERT INTO bugs (session_id, page_id, fingerprint, category, priority, title, description,
        steps_to_reproduce, evidence, confidence, expected_behavior, actual_behavior,
        affected_users, browser_info)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (session_id, fingerprint) DO UPDATE SET fingerprint = bugs.fingerprint
    RETURNING *, (xmax = 0) AS created
), counted AS (
    UPDATE crawl_sessions SET bugs_found = bugs_found + 1, updated_at = now()
    WHERE id = $1 AND (SELECT created FROM bug)
    RETURNING id
)
SELECT bug.*, pg_current_xact_id()::text AS xid FROM bug
"""
# Last, the page becomes an occurrence of the bug ($1) unless it already was one (the unique
# (bug_id, page_id) index decides, so two concurrent reports from one page count once); for a
# known bug ($5 false) a new occurrence raises its count. A statement of its own: the
# row-level security check of a new occurrence must see the bug row, which it cannot in the
# statement that inserts it.
RECORD_OCCURRENCE = """
WITH occurrence AS (
    INSERT INTO bug_occurrences (bug_id, session_id, page_id, evidence)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (bug_id, page_id) DO NOTHING
    RETURNING bug_id
)
UPDATE bugs SET occurrences = occurrences + 1, updated_at = now()
WHERE id = (SELECT bug_id FROM occurrence) AND NOT $5::boolean
RETURNING occurrences, updated_at
"""


class BugRepository(Repository):
    async def create_bug(
        self,
        session_id: uuid.UUID,
        page_id: uuid.UUID,
        category: BugCategory | str,
        priority: BugPriority | str,
        title: str,
        description: str,
        steps_to_reproduce: Sequence[str] = (),
        evidence: Sequence[Evidence | dict[str, Any]] = (),
        confidence: float = 0.5,
        expected_behavior: str | None = None,
        actual_behavior: str | None = None,
        affected_users: str | None = None,
        browser_info: dict[str, Any] | None = None,
        dedup_key: str | None = None,
    ) -> BugFiled:
        """File a bug found on ``page_id`` (which must belong to ``session_id``).

        Deduplicated: a bug whose fingerprint (category + ``dedup_key``, or category +
        normalized title + page path template) is already known in the session is not filed
        again — the existing bug is returned with ``created=False``, and if this page had not
        reported it yet, its ``occurrences`` rise by one and the page and evidence are attached
        as a new occurrence. ``bugs_found`` counts distinct bugs. All in one transaction; the
        unique index on ``(session_id, fingerprint)`` makes concurrent reports safe."""
        category = _enum_value("category", BugCategory, category)
        priority = _enum_value("priority", BugPriority, priority)
        steps_json = json.dumps(_steps(steps_to_reproduce))
        evidence_json = json.dumps(_evidence(evidence))
        confidence = _confidence(confidence)
        conn = await driver_connection(self.session)
        page = await conn.fetchrow(PAGE_OF_BUG, page_id)
        if page is None:
            if await self._current_status("crawl_sessions", session_id) is None:
                raise NotFound("crawl session", session_id, field="session_id")
            raise NotFound("page", page_id, field="page_id")
        if page["session_id"] != session_id:
            raise InvalidArgument(
                "page_id", f"page {page_id} belongs to another session, not {session_id}"
            )
        fingerprint = bug_fingerprint(category, title, page["url"], dedup_key)
        filed = await conn.fetchrow(
            FILE_BUG,
            session_id,
            page_id,
            fingerprint,
            category,
            priority,
            title,
            description,
            steps_json,
            evidence_json,
            confidence,
            expected_behavior,
            actual_behavior,
            affected_users,
            None if browser_info is None else json.dumps(browser_info),
        )
        remember_transaction_id(self.session, filed["xid"])
        bug = dict(filed)
        bumped = await conn.fetchrow(
            RECORD_OCCURRENCE, bug["id"], session_id, page_id, evidence_json, bug["created"]
        )
        if bumped is not None:
            bug.update(bumped)
        return BugFiled.model_validate(bug)

    async def get(self, bug_id: uuid.UUID) -> BugPublic:
        return await self._fetch_one(BugPublic, "bugs", bug_id)

    async def mark_validated(self, bug_id: uuid.UUID) -> BugPublic:
        """detected → validated: a human or a second pass confirmed the bug."""
        row = await self._transition(
            Bug,
            bug_id,
            action="validate",
            allowed_from=[BugStatus.DETECTED],
            values={"status": BugStatus.VALIDATED},
        )
        return BugPublic.model_validate(row)

    async def mark_reported(
        self, bug_id: uuid.UUID, linear_issue_id: str, linear_issue_url: str
    ) -> BugPublic:
        """validated → reported, remembering the Linear issue it was filed as.

        Idempotent: repeating it for a bug already reported as the same ``linear_issue_id``
        returns the bug unchanged (a retry after a lost answer is safe); reported as another
        issue, it is an :class:`InvalidTransition` as before."""
        try:
            row = await self._transition(
                Bug,
                bug_id,
                action="report",
                allowed_from=[BugStatus.VALIDATED],
                values={
                    "status": BugStatus.REPORTED,
                    "linear_issue_id": linear_issue_id,
                    "linear_issue_url": linear_issue_url,
                    "reported_at": func.now(),
                },
            )
        except InvalidTransition as refused:
            if refused.current == BugStatus.REPORTED:
                bug = await self.get(bug_id)
                if bug.linear_issue_id == linear_issue_id:
                    return bug
            raise
        return BugPublic.model_validate(row)

    async def dismiss(self, bug_id: uuid.UUID, reason: str) -> BugPublic:
        """any status → dismissed (a false positive, a duplicate, won't fix), with the reason."""
        row = await self._transition(
            Bug,
            bug_id,
            action="dismiss",
            allowed_from=[BugStatus.DETECTED, BugStatus.VALIDATED, BugStatus.REPORTED],
            values={
                "status": BugStatus.DISMISSED,
                "dismissed_reason": reason,
                "dismissed_at": func.now(),
            },
        )
        return BugPublic.model_validate(row)

    async def _bugs(
        self,
        session_id: uuid.UUID,
        conditions: Sequence[str],
        arguments: Sequence[Any],
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

    async def get_high_confidence_bugs(
        self, session_id: uuid.UUID, min_confidence: float = 0.8, skip: int = 0, limit: int = 50
    ) -> BugList:
        """Bugs at or above ``min_confidence`` that are not dismissed, most confident first."""
        threshold = _confidence(min_confidence, field="min_confidence")
        conditions = ("confidence >= $2", _NOT_DISMISSED)
        return await self._bugs(session_id, conditions, [threshold], _MOST_CONFIDENT, skip, limit)

    async def get_critical_bugs(
        self, session_id: uuid.UUID, skip: int = 0, limit: int = 50
    ) -> BugList:
        """Critical bugs that are not dismissed, most confident first."""
        conditions = (f"priority = '{BugPriority.CRITICAL.value}'", _NOT_DISMISSED)
        return await self._bugs(session_id, conditions, [], _MOST_CONFIDENT, skip, limit)

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
        arguments: list[str] = []
        filters = (
            ("status", BugStatus, status),
            ("priority", BugPriority, priority),
            ("category", BugCategory, category),
        )
        for column, enum, value in filters:
            if value is not None:
                arguments.append(_enum_value(column, enum, value))
                conditions.append(f"{column} = ${len(arguments) + 1}")  # $1: the session
        return await self._bugs(session_id, conditions, arguments, _MOST_URGENT, skip, limit)

    async def get_report_rows(
        self, session_id: uuid.UUID, limit: int = 200
    ) -> tuple[list[ReportBug], int]:
        """The session's bugs that are not dismissed, most urgent first, each with the URL
        of the page it was first found on; and how many there are in all. One statement
        (:func:`report_rows_statement`, on the driver path)."""
        conn = await driver_connection(self.session)
        rows = await conn.fetch(report_rows_statement(limit), session_id)
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        return listed_rows(rows, ReportBug, 0, limit)[0], int(rows[0]["total"])

    async def get_bug_statistics(self, session_id: uuid.UUID) -> BugStatistics:
        """Totals by priority, category and status plus the average confidence, computed in
        one SQL pass (``count(*) FILTER``) over the session's bugs.

        One statement (:data:`BUG_STATISTICS`, on the driver path): the session check and the
        pass, where they were two statements (four round trips with the transaction)."""
        conn = await driver_connection(self.session)
        row = await fetch_aggregate(conn, BUG_STATISTICS, session_id)
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


def _most_urgent(bug: str = "") -> str:
    """Most urgent first (critical → low), then oldest, as SQL; ``bug``: the bugs table's
    alias with its dot, in a join."""
    ranks = " ".join(f"WHEN '{p.value}' THEN {p.rank}" for p in BugPriority)
    return f"CASE {bug}priority {ranks} ELSE {len(BugPriority)} END"


# The orders of the bug lists, as SQL; each ends with the id, so pages never overlap.
_MOST_CONFIDENT = "confidence DESC, created_at, id"
_MOST_URGENT = f"{_most_urgent()}, created_at, id"
_NOT_DISMISSED = f"status <> '{BugStatus.DISMISSED.value}'"

# The report's bug table in one statement, $1: session_id — the session check, the count of
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
WHERE crawl.id = $1
"""


@functools.lru_cache(maxsize=16)
def report_rows_statement(limit: int) -> str:
    return _REPORT_ROWS.format(limit=int(limit))


# get_bug_statistics in one statement, $1: session_id. An aggregate without GROUP BY always
# returns its one row; ``known`` is NULL when there is no such session. The pass filters on
# ``session_id = $1`` itself (not through a join), so it is planned for that session.
BUG_STATISTICS = f"""
SELECT (SELECT true FROM crawl_sessions WHERE id = $1) AS known,
    count(*) AS total, coalesce(sum(occurrences), 0) AS occurrences,
    avg(confidence) AS average_confidence,
    {count_filters_sql("priority", BugPriority)},
    {count_filters_sql("category", BugCategory)},
    {count_filters_sql("status", BugStatus)}
FROM bugs WHERE session_id = $1
"""


def _enum_value(
    field: str, enum: type[BugCategory | BugPriority | BugStatus], value: object
) -> str:
    try:
        return enum(str(value)).value
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidArgument(field, f"{value!r} is not one of: {allowed}") from None


def _confidence(value: float, field: str = "confidence") -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidArgument(field, f"must be between 0 and 1, got {value}")
    return float(value)


def _steps(steps: Sequence[str]) -> list[str]:
    if isinstance(steps, str):
        raise InvalidArgument("steps_to_reproduce", "must be a list of steps, not one string")
    if len(steps) > MAX_STEPS:
        raise InvalidArgument("steps_to_reproduce", f"at most {MAX_STEPS} steps, got {len(steps)}")
    for i, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip():
            raise InvalidArgument(f"steps_to_reproduce[{i}]", "must be a non-empty string")
        if len(step) > MAX_STEP_LENGTH:
            raise InvalidArgument(
                f"steps_to_reproduce[{i}]", f"at most {MAX_STEP_LENGTH} characters"
            )
    return list(steps)


def _evidence(items: Sequence[Evidence | dict[str, Any]]) -> list[dict[str, Any]]:
    if len(items) > MAX_EVIDENCE:
        raise InvalidArgument("evidence", f"at most {MAX_EVIDENCE} items, got {len(items)}")
    out = []
    for i, item in enumerate(items):
        try:
            ev = item if isinstance(item, Evidence) else Evidence.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InvalidArgument(
                f"evidence[{i}]{'.' + loc if loc else ''}", str(err["msg"])
            ) from None
        out.append(ev.model_dump(mode="json", exclude_none=True))
    return out
