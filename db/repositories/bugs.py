"""Bugs found by the agent: filing (with evidence and steps), the detected → validated →
reported life cycle (any → dismissed), and the queries triage needs. Aggregates run in SQL in a
single pass; nothing here loads rows to count them."""

import json
import uuid
from collections.abc import Sequence
from typing import Any

from db.bug_schemas import (
    BugFiled,
    BugPublic,
    Evidence,
    FiledBugRow,
    Grouping,
)
from db.connection.unit_of_work import writes
from db.enums import BugCategory, BugPriority, BugStatus
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.repositories.base import RETURNING_XID, Transition
from db.repositories.bug_input import confidence_of, enum_value, evidence_of, steps_of
from db.repositories.bug_queries import BugQueries
from db.repositories.sessions import counting_statement
from db.repositories.statements import Statement
from db.rules.fingerprint import SCOPES, Scope, bug_fingerprint

# create_bug's statements, in the lock order of every write (db.repositories): the bug, then the
# session's counter; the occurrence comes after, but locks only the new occurrence row and the
# bug this transaction already holds. First the page's session and URL (the fingerprint
# needs the URL):
PAGE_OF_BUG = Statement(
    "pages of bug", "SELECT session_id, url FROM pages WHERE id = :id", writes=False
)
# Then the filing: the bug is inserted, or — known fingerprint — the existing row is locked and
# returned (the no-op DO UPDATE) with ``created`` false; a new bug raises the session's
# bugs_found. The row comes back whole with the transaction's id, so nothing is read back and
# the unit of work need not ask for the id.
_FILING = """
    INSERT INTO bugs (session_id, page_id, fingerprint, category, priority, title, description,
        steps_to_reproduce, evidence, confidence, expected_behavior, actual_behavior,
        affected_users, browser_info)
    VALUES (:session_id, :page_id, :fingerprint, :category, :priority, :title, :description,
        :steps_to_reproduce, :evidence, :confidence, :expected_behavior, :actual_behavior,
        :affected_users, :browser_info)
    ON CONFLICT (session_id, fingerprint) DO UPDATE SET fingerprint = bugs.fingerprint
    RETURNING *, (xmax = 0) AS created
"""
# The same filing without the counter, for finish_page: it raises all the session's counters
# at once, last.
FILE_BUG_UNCOUNTED = Statement(
    "bugs file uncounted", _FILING.rstrip() + f", {RETURNING_XID}", writes=True, returns=FiledBugRow
)
FILE_BUG = counting_statement(
    "bugs file",
    "bug",
    _FILING,
    counter="bugs_found",
    where="id = :session_id AND (SELECT created FROM bug)",
    returns=FiledBugRow,
)
# Last, the page becomes an occurrence of the bug unless it already was one (the unique
# (bug_id, page_id) index decides, so two concurrent reports from one page count once); for a
# known bug (``created`` false) a new occurrence raises its count. A statement of its own: the
# row-level security check of a new occurrence must see the bug row, which it cannot in the
# statement that inserts it.
RECORD_OCCURRENCE = Statement(
    "bug_occurrences record",
    """
WITH occurrence AS (
    INSERT INTO bug_occurrences (bug_id, session_id, page_id, evidence)
    VALUES (:bug_id, :session_id, :page_id, :evidence)
    ON CONFLICT (bug_id, page_id) DO NOTHING
    RETURNING bug_id
)
UPDATE bugs SET occurrences = occurrences + 1, updated_at = now()
WHERE id = (SELECT bug_id FROM occurrence) AND NOT CAST(:created AS boolean)
RETURNING occurrences, updated_at
""",
    writes=True,
)
VALIDATE_BUG = Transition(
    "bugs",
    "validate",
    [BugStatus.DETECTED],
    f"status = '{BugStatus.VALIDATED.value}'",
    returns=BugPublic,
)
REPORT_BUG = Transition(
    "bugs",
    "report",
    [BugStatus.VALIDATED],
    f"status = '{BugStatus.REPORTED.value}', linear_issue_id = :linear_issue_id, "
    "linear_issue_url = :linear_issue_url, reported_at = now()",
    returns=BugPublic,
)
DISMISS_BUG = Transition(
    "bugs",
    "dismiss",
    [BugStatus.DETECTED, BugStatus.VALIDATED, BugStatus.REPORTED],
    f"status = '{BugStatus.DISMISSED.value}', dismissed_reason = :dismissed_reason, "
    "dismissed_at = now()",
    returns=BugPublic,
)


def _kinds(
    category: BugCategory | str, priority: BugPriority | str, group_by: str
) -> tuple[str, str]:
    """The category and priority as stored; InvalidArgument naming the field when one of the
    three is not an allowed value."""
    if group_by not in SCOPES:
        raise InvalidArgument("group_by", f"must be one of {', '.join(SCOPES)}, got {group_by!r}")
    return enum_value("category", BugCategory, category), enum_value(
        "priority", BugPriority, priority
    )


class BugRepository(BugQueries):
    @writes
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
        group_by: Scope = "site",
    ) -> BugFiled:
        """File a bug found on ``page_id`` (which must belong to ``session_id``).

        Deduplicated: a bug whose fingerprint (category + ``dedup_key``, or category +
        normalized title within ``group_by``: the whole session by default, a path template or
        one page; :mod:`db.rules.fingerprint`) is already known in the session is not filed
        again — the existing bug is returned with ``created=False``, and if this page had not
        reported it yet, its ``occurrences`` rise by one and the page and evidence are attached
        as a new occurrence. ``bugs_found`` counts distinct bugs. All in one transaction; the
        unique index on ``(session_id, fingerprint)`` makes concurrent reports safe."""
        _kinds(category, priority, group_by)  # bad input is refused before any statement
        page = await PAGE_OF_BUG.fetchrow(self.session, id=page_id)
        if page is None:
            if await self._current_status("crawl_sessions", session_id) is None:
                raise NotFound("crawl session", session_id, field="session_id")
            raise NotFound("page", page_id, field="page_id")
        if page["session_id"] != session_id:
            raise InvalidArgument(
                "page_id", f"page {page_id} belongs to another session, not {session_id}"
            )
        return await self.file_on_page(
            FILE_BUG,
            session_id,
            page_id,
            page["url"],
            category=category,
            priority=priority,
            title=title,
            description=description,
            steps_to_reproduce=steps_to_reproduce,
            evidence=evidence,
            confidence=confidence,
            expected_behavior=expected_behavior,
            actual_behavior=actual_behavior,
            affected_users=affected_users,
            browser_info=browser_info,
            dedup_key=dedup_key,
            group_by=group_by,
        )

    @writes
    async def file_on_page(
        self,
        filing: Statement,
        session_id: uuid.UUID,
        page_id: uuid.UUID,
        page_url: str,
        *,
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
        group_by: Scope = "site",
    ) -> BugFiled:
        """File or group a bug on a page known to be ``session_id``'s, with ``filing``:
        :data:`FILE_BUG` (raises ``bugs_found`` for a new bug) or :data:`FILE_BUG_UNCOUNTED`
        (finish_page, which raises every counter at once, last), then record the occurrence."""
        category, priority = _kinds(category, priority, group_by)
        evidence_json = json.dumps(evidence_of(evidence))
        fingerprint = bug_fingerprint(category, title, page_url, dedup_key, group_by)
        filed = await filing.fetchrow(
            self.session,
            session_id=session_id,
            page_id=page_id,
            fingerprint=fingerprint.value,
            category=category,
            priority=priority,
            title=title,
            description=description,
            steps_to_reproduce=json.dumps(steps_of(steps_to_reproduce)),
            evidence=evidence_json,
            confidence=confidence_of(confidence),
            expected_behavior=expected_behavior,
            actual_behavior=actual_behavior,
            affected_users=affected_users,
            browser_info=None if browser_info is None else json.dumps(browser_info),
        )
        assert filed is not None  # an INSERT … ON CONFLICT DO UPDATE always returns its row
        self.session.remember_transaction_id(filed["xid"])
        bug = dict(filed)
        bumped = await RECORD_OCCURRENCE.fetchrow(
            self.session,
            bug_id=bug["id"],
            session_id=session_id,
            page_id=page_id,
            evidence=evidence_json,
            created=bug["created"],
        )
        if bumped is not None:
            bug.update(bumped)
        bug["grouping"] = Grouping(
            key=fingerprint.key,
            scope=fingerprint.scope,
            normalized=fingerprint.normalized,
            fingerprint_version=fingerprint.version,
        )
        return BugFiled.model_validate(bug)

    @writes
    async def mark_validated(self, bug_id: uuid.UUID) -> BugPublic:
        """detected → validated: a human or a second pass confirmed the bug."""
        return await self._transition(VALIDATE_BUG, bug_id)

    @writes
    async def mark_reported(
        self, bug_id: uuid.UUID, linear_issue_id: str, linear_issue_url: str
    ) -> BugPublic:
        """validated → reported, remembering the Linear issue it was filed as.

        Idempotent: repeating it for a bug already reported as the same ``linear_issue_id``
        returns the bug unchanged (a retry after a lost answer is safe); reported as another
        issue, it is an :class:`InvalidTransition` as before."""
        try:
            return await self._transition(
                REPORT_BUG,
                bug_id,
                linear_issue_id=linear_issue_id,
                linear_issue_url=linear_issue_url,
            )
        except InvalidTransition as refused:
            if refused.current == BugStatus.REPORTED:
                bug = await self._fetch_one(BugPublic, "bugs", bug_id)
                if bug.linear_issue_id == linear_issue_id:
                    return bug
            raise

    @writes
    async def dismiss(self, bug_id: uuid.UUID, reason: str) -> BugPublic:
        """any status → dismissed (a false positive, a duplicate, won't fix), with the reason."""
        return await self._transition(DISMISS_BUG, bug_id, dismissed_reason=reason)
