"""Crawl sessions: creation, life cycle (pending → running → completed | failed), counters and
cost, and the statistics an agent reads to decide what to do next."""

import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError
from sqlalchemy import Numeric

from db.connection.unit_of_work import writes
from db.enums import PageStatus, SessionStatus
from db.errors import Conflict, CounterLimit, InvalidArgument, InvalidTransition, NotFound
from db.models import TENANT_DEFAULT, CrawlSession
from db.repositories.base import RETURNING_XID, Transition, sql_list
from db.repositories.leases import LEASE_ENDED
from db.repositories.session_reads import OPEN_SESSION_STATUSES, SessionReads
from db.repositories.statements import Statement
from db.rules.scope import CrawlScope
from db.rules.secrets import cipher_of, seal
from db.rules.urls import InvalidUrl
from db.schemas import (
    CrawlConfig,
    CrawlSessionPublic,
    SessionCompleted,
)

MAX_COST_PER_CALL = Decimal("10000")
# The statuses of pages a completion leaves unfinished (reported by complete_session).
_UNFINISHED = (PageStatus.DISCOVERED, PageStatus.CRAWLING)
# total_cost is NUMERIC(10, 4): at most 999999.9999 (USD), in steps of 0.0001. Derived from the
# column, so a wider column widens the limit.
_COST_TYPE = CrawlSession.__table__.c.total_cost.type
assert isinstance(_COST_TYPE, Numeric)
COST_STEP = Decimal(1).scaleb(-int(_COST_TYPE.scale or 0))
MAX_TOTAL_COST = (
    Decimal(10) ** (int(_COST_TYPE.precision or 0) - int(_COST_TYPE.scale or 0)) - COST_STEP
)


def raise_counters_sql(amounts: Mapping[str, str], where: str) -> str:
    """The one spelling of raising session counters, ``SET column = column + amount`` in SQL
    (concurrent increments never get lost): ``amounts`` maps each column to its SQL amount.
    Always the last lock a write takes (see db.repositories)."""
    raised = ", ".join(f"{column} = {column} + {amount}" for column, amount in amounts.items())
    return f"UPDATE crawl_sessions SET {raised}, updated_at = now() WHERE {where}"


def raise_counter_sql(column: str, amount: str, where: str) -> str:
    """One counter raised (:func:`raise_counters_sql`), for the statements of the crawl loop
    that raise one: finishing a page, filing a bug, a discovery."""
    return raise_counters_sql({column: amount}, where)


def counting_statement(
    name: str, alias: str, write: str, *, counter: str, where: str, returns: type[BaseModel]
) -> Statement:
    """A write of the crawl loop and the session counter it raises by one, in one statement:
    ``write`` (an ``INSERT`` or ``UPDATE … RETURNING``, named ``alias``) first, then the
    ``counter`` of the session that ``where`` picks (it may ask ``alias`` whether the write
    counts); the written rows come back, read into ``returns``, with the transaction's id."""
    body = write.strip("\n")
    sql = f"""
WITH {alias} AS (
{body}
), counted AS (
    {raise_counter_sql(counter, "1", where)}
    RETURNING id
)
SELECT {alias}.*, {RETURNING_XID} FROM {alias}
"""
    return Statement(name, sql, writes=True, returns=returns)


def _counter(column: str, where: str = "") -> Statement:
    return Statement(
        f"crawl_sessions raise {column}",
        raise_counter_sql(column, ":amount", f"id = :session_id{where}")
        + f" RETURNING *, {RETURNING_XID}",
        writes=True,
        returns=CrawlSessionPublic,
    )


# Discovery counts its new pages only in an open session: a session completed meanwhile
# refuses them (the whole discovery rolls back).
COUNT_DISCOVERED = _counter(
    "pages_discovered", f" AND status IN ({sql_list(OPEN_SESSION_STATUSES)})"
)
_COUNTERS = {
    "pages_discovered": COUNT_DISCOVERED,
    "pages_crawled": _counter("pages_crawled"),
    "bugs_found": _counter("bugs_found"),
}
ADD_COST = _counter("total_cost", " AND total_cost + :amount <= :at_most")
_COUNTER_NOW = {
    column: Statement(
        f"crawl_sessions read {column}",
        f"SELECT {column}, status FROM crawl_sessions WHERE id = :session_id",
        writes=False,
    )
    for column in (*_COUNTERS, "total_cost")
}

_INSERT_SESSION = """
INSERT INTO crawl_sessions (base_url, config{key_column})
VALUES (:base_url, :config{key_value})
{on_conflict}
RETURNING *
"""
CREATE_SESSION = Statement(
    "crawl_sessions create",
    _INSERT_SESSION.format(key_column="", key_value="", on_conflict=""),
    writes=True,
    returns=CrawlSessionPublic,
)
# With an idempotency key: the unique (tenant, idempotency_key) index decides who creates.
CREATE_SESSION_ONCE = Statement(
    "crawl_sessions create once",
    _INSERT_SESSION.format(
        key_column=", idempotency_key",
        key_value=", :idempotency_key",
        on_conflict="ON CONFLICT (tenant, idempotency_key) DO NOTHING",
    ),
    writes=True,
    returns=CrawlSessionPublic,
)
SESSION_OF_KEY = Statement(
    "crawl_sessions of key",
    f"SELECT * FROM crawl_sessions WHERE tenant = {TENANT_DEFAULT} "
    "AND idempotency_key = :idempotency_key",
    writes=False,
    returns=CrawlSessionPublic,
)
START_SESSION = Transition(
    "crawl_sessions",
    "start",
    [SessionStatus.PENDING],
    f"status = '{SessionStatus.RUNNING.value}', started_at = now()",
    returns=CrawlSessionPublic,
)
COMPLETE_SESSION = Transition(
    "crawl_sessions",
    "complete",
    [SessionStatus.RUNNING],
    f"status = '{SessionStatus.COMPLETED.value}', completed_at = now(), error_message = NULL",
    returns=CrawlSessionPublic,
)
FAIL_SESSION = Transition(
    "crawl_sessions",
    "fail",
    [SessionStatus.PENDING, SessionStatus.RUNNING],
    f"status = '{SessionStatus.FAILED.value}', completed_at = now(), "
    "error_message = :error_message",
    returns=CrawlSessionPublic,
)
# What a completion would leave unfinished: pages leased now, and never crawled.
UNFINISHED_PAGES = Statement(
    "pages unfinished",
    f"""
SELECT count(*) FILTER (WHERE status = '{PageStatus.CRAWLING.value}'
        AND lease_expires_at > now()) AS leased,
    count(*) FILTER (WHERE status = '{PageStatus.DISCOVERED.value}') AS discovered
FROM pages WHERE session_id = :session_id AND status IN ({sql_list(_UNFINISHED)})
""",
    writes=False,
)
STOP_CRAWLING = Statement(
    "pages stop crawling",
    f"""
UPDATE pages SET status = '{PageStatus.ERROR.value}',
    error_message = 'the crawl session ended while the page was being crawled',
    crawled_at = now(), {LEASE_ENDED}, updated_at = now()
WHERE session_id = :session_id AND status = '{PageStatus.CRAWLING.value}'
""",
    writes=True,
)


class CrawlSessionRepository(SessionReads):
    @writes
    async def create_session(
        self,
        base_url: str,
        config: CrawlConfig | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> CrawlSessionPublic:
        """Create a session in status ``pending`` with all counters at 0.

        With ``idempotency_key`` the call is replay-safe: the first call with a key creates the
        session; every later call with the same key (in the same tenant) creates nothing and
        returns that session as it is now (its first config stands), even when both run at
        once — the unique index on ``(tenant, idempotency_key)`` decides. A key already used
        for another base URL is a :class:`Conflict`."""
        if isinstance(config, CrawlConfig):
            crawl_config = config
        else:
            try:
                crawl_config = CrawlConfig.model_validate(dict(config or {}))
            except ValidationError as exc:
                raise InvalidArgument("config", _first_error(exc)) from None
        try:
            base_url = CrawlScope(base_url, crawl_config).normalize(base_url)
        except InvalidUrl as exc:
            raise InvalidArgument("base_url", str(exc)) from None
        stored = json.dumps(self._stored_config(crawl_config))
        if idempotency_key is not None:
            return await self._create_once(base_url, stored, idempotency_key)
        row = await CREATE_SESSION.fetchrow(self.session, base_url=base_url, config=stored)
        return CrawlSessionPublic.model_validate(dict(row or {}))

    async def _create_once(
        self, base_url: str, stored_config: str, idempotency_key: str
    ) -> CrawlSessionPublic:
        created = await CREATE_SESSION_ONCE.fetchrow(
            self.session, base_url=base_url, config=stored_config, idempotency_key=idempotency_key
        )
        if created is not None:
            return CrawlSessionPublic.model_validate(dict(created))
        row = await SESSION_OF_KEY.fetchrow(self.session, idempotency_key=idempotency_key)
        # The key is the caller's text: named, never echoed (it may be huge, or a secret).
        if row is None:  # the row that conflicted is gone again (deleted meanwhile)
            raise Conflict("the idempotency_key is in use by a session being deleted; retry")
        if row["base_url"] != base_url:
            raise Conflict(
                f"the idempotency_key was already used to create crawl session {row['id']} for "
                "another base_url; use a new key for another site"
            )
        return CrawlSessionPublic.model_validate(dict(row))

    def _stored_config(self, config: CrawlConfig) -> dict[str, Any]:
        """The config as stored: the credentials password encrypted (refused without a key)."""
        return seal(config.to_storage(), cipher_of(self.session))

    @writes
    async def start_session(self, session_id: uuid.UUID) -> CrawlSessionPublic:
        """pending → running; sets ``started_at``."""
        return await self._transition(START_SESSION, session_id)

    @writes
    async def complete_session(
        self,
        session_id: uuid.UUID,
        success: bool = True,
        error_message: str | None = None,
        force: bool = False,
    ) -> SessionCompleted:
        """running → completed (``success``), or pending | running → failed (with the error).

        Refused (:class:`Conflict`) while a worker still holds a live lease on a page of the
        session, unless ``force``. On completion every page still in ``crawling`` becomes
        ``error`` (its lease can no longer be honoured), so no page is left in flight. The
        answer says how many pages were left unfinished: still discovered, and stopped."""
        unfinished = await UNFINISHED_PAGES.fetchrow(self.session, session_id=session_id)
        assert unfinished is not None  # an aggregate: always one row
        leased, discovered = int(unfinished["leased"]), int(unfinished["discovered"])
        if leased and not force:
            raise Conflict(
                f"cannot complete crawl session {session_id}: {leased} page(s) are still leased "
                "to workers; wait for them to finish, or pass force=true to stop them"
            )
        # Pages first, then the session row: the lock order of every write (db.repositories).
        # A refused status change below rolls this back with the rest.
        stopped = await STOP_CRAWLING.execute(self.session, session_id=session_id)
        if success:
            public = await self._transition(COMPLETE_SESSION, session_id)
        else:
            public = await self._transition(FAIL_SESSION, session_id, error_message=error_message)
        return SessionCompleted(
            **dict(public),
            unfinished_pages={PageStatus.DISCOVERED: discovered, PageStatus.CRAWLING: stopped},
        )

    @writes
    async def raise_counter(
        self,
        session_id: uuid.UUID,
        column: str,
        amount: int | Decimal,
    ) -> CrawlSessionPublic:
        """Raise one of the session's counters by ``amount`` (:data:`COUNT_DISCOVERED` and its
        siblings); returns the session as it is now. ``pages_discovered`` counts only in an
        open session (InvalidTransition otherwise)."""
        statement = _COUNTERS[column]
        row = await statement.fetchrow(self.session, session_id=session_id, amount=amount)
        if row is None:
            await self._refuse_count(session_id, column, amount, None)
        self.session.remember_transaction_id(row["xid"])
        return CrawlSessionPublic.model_validate(dict(row))

    async def _refuse_count(
        self, session_id: uuid.UUID, column: str, amount: int | Decimal, at_most: Decimal | None
    ) -> NoReturn:
        """Why a counter's statement changed nothing (one read)."""
        now = await _COUNTER_NOW[column].fetchrow(self.session, session_id=session_id)
        if now is None:
            raise NotFound("crawl session", session_id, field="session_id")
        if at_most is not None:
            raise CounterLimit("crawl session", session_id, column, now[column], amount, at_most)
        raise InvalidTransition(
            "crawl session", session_id, "add pages to", now["status"], OPEN_SESSION_STATUSES
        )

    @writes
    async def increment_pages_discovered(self, session_id: uuid.UUID, count: int = 1) -> None:
        await self.raise_counter(session_id, "pages_discovered", _non_negative("count", count))

    @writes
    async def increment_pages_crawled(self, session_id: uuid.UUID, count: int = 1) -> None:
        await self.raise_counter(session_id, "pages_crawled", _non_negative("count", count))

    @writes
    async def increment_bugs_found(self, session_id: uuid.UUID, count: int = 1) -> None:
        await self.raise_counter(session_id, "bugs_found", _non_negative("count", count))

    @writes
    async def add_cost(self, session_id: uuid.UUID, cost: float | Decimal) -> CrawlSessionPublic:
        """Add AI spend (USD) to the session's ``total_cost``; returns the updated session.

        Refused (:class:`CounterLimit`, nothing changed) when the total would pass
        ``MAX_TOTAL_COST``, the most its column holds: the check and the increment are one
        statement, so a concurrent one cannot slip between them."""
        amount = Decimal(str(cost))
        if not amount.is_finite() or amount < 0 or amount > MAX_COST_PER_CALL:
            raise InvalidArgument(
                "cost", f"must be between 0 and {MAX_COST_PER_CALL} USD, got {cost}"
            )
        amount = amount.quantize(COST_STEP)
        row = await ADD_COST.fetchrow(
            self.session, session_id=session_id, amount=amount, at_most=MAX_TOTAL_COST
        )
        if row is None:
            await self._refuse_count(session_id, "total_cost", amount, MAX_TOTAL_COST)
        self.session.remember_transaction_id(row["xid"])
        return CrawlSessionPublic.model_validate(dict(row))


def _non_negative(field: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(field, f"must be 0 or more, got {value}")
    return value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])
