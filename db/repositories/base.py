"""What every repository shares: the session it works in, lists and reads by id in one
statement each (bounded pagination included), and the compare-and-set status change that keeps
life cycles honest under concurrency."""

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel
from sqlalchemy import Text, cast, func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from db.database import remember_transaction_id
from db.driver import driver_connection
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.models import Base
from db.schemas import Pagination

ModelT = TypeVar("ModelT", bound=Base)
ItemT = TypeVar("ItemT", bound=BaseModel)

MAX_PAGE_SIZE = 100


def check_page_bounds(skip: int, limit: int, max_limit: int = MAX_PAGE_SIZE) -> None:
    """Every list query is bounded: refuse (do not clamp) out-of-range pagination."""
    if not 1 <= limit <= max_limit:
        raise InvalidArgument("limit", f"must be between 1 and {max_limit}, got {limit}")
    if skip < 0:
        raise InvalidArgument("skip", f"must be 0 or more, got {skip}")


def count_filters_sql(column: str, values: Iterable[str]) -> str:
    """``count(*) FILTER (WHERE column = 'value') AS "column__value"`` for every value: one
    pass, no GROUP BY, read back by :func:`counts_from_row`. ``values``: a ``StrEnum`` (its
    members are their values), never input."""
    return ",\n        ".join(
        f"count(*) FILTER (WHERE {column} = '{value}') AS \"{column}__{value}\"" for value in values
    )


def counts_from_row(row: Mapping[Any, Any], column: str, values: Iterable[str]) -> dict[str, int]:
    """The counts :func:`count_filters_sql` labelled, keyed by value."""
    return {value: int(row[f"{column}__{value}"]) for value in values}


# A page of a list in one statement (one round trip, on the driver path: db.driver): the count
# of the matching rows and the page itself — and, for a session's rows, the session check (no
# row at all: no such session). A LEFT JOIN keeps the count's row when the page is empty: its
# row columns are then NULL. What the ORM sent as three to five round trips (BEGIN, session
# check, count, page, COMMIT).
_SESSION_LISTING = """
SELECT listed.total, item.*
FROM crawl_sessions AS crawl
CROSS JOIN LATERAL (
    SELECT count(*) AS total FROM {table} WHERE session_id = crawl.id AND {where}
) AS listed
LEFT JOIN LATERAL (
    SELECT {columns} FROM {table} WHERE session_id = crawl.id AND {where}
    ORDER BY {order_by}
    OFFSET {skip} LIMIT {limit}
) AS item ON true
WHERE crawl.id = $1
"""
_TABLE_LISTING = """
SELECT listed.total, item.*
FROM (SELECT count(*) AS total FROM {table} WHERE {where}) AS listed
LEFT JOIN LATERAL (
    SELECT {columns} FROM {table} WHERE {where}
    ORDER BY {order_by}
    OFFSET {skip} LIMIT {limit}
) AS item ON true
"""


@functools.lru_cache(maxsize=512)
def listing_statement(
    table: str,
    conditions: tuple[str, ...],
    order_by: str,
    skip: int,
    limit: int,
    *,
    of_session: bool,
    columns: str = "*",
) -> str:
    """The statement of one page of ``table``'s rows matching every condition (SQL from the
    code, never input; their parameters numbered from ``$2`` with ``of_session``, whose ``$1``
    is the session, else from ``$1``), ordered by ``order_by`` (which must end with a unique
    column, or pages could overlap). ``skip`` and ``limit`` are literals, checked by the
    caller: PostgreSQL then plans the ``LIMIT`` knowing it, and the plan is kept per
    connection — one prepared statement per page size and offset (``get_pages_to_crawl``: 0.62
    → 0.47 ms, docs/benchmarks.md fix 12). ``columns``: the row columns, as SQL; ``id`` among
    them."""
    template = _SESSION_LISTING if of_session else _TABLE_LISTING
    return template.format(
        table=table,
        where=" AND ".join(conditions) or "true",
        order_by=order_by,
        skip=int(skip),
        limit=int(limit),
        columns=columns,
    )


def listed_rows(
    rows: Sequence[Mapping[str, Any]], item: type[ItemT], skip: int, limit: int
) -> tuple[list[ItemT], Pagination]:
    """The items and pagination facts of a :func:`listing_statement`'s rows (at least one: a
    page past the end is one row of NULL row columns and the total)."""
    items = [item.model_validate(dict(row)) for row in rows if row["id"] is not None]
    return items, Pagination.of(int(rows[0]["total"]), skip, limit, len(items))


class Repository:
    """Base of the three repositories: holds the caller's ``AsyncSession`` (the unit of work)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _list(
        self,
        item: type[ItemT],
        table: str,
        *,
        session_id: uuid.UUID | None = None,
        conditions: Sequence[str] = (),
        arguments: Sequence[Any] = (),
        order_by: str,
        skip: int,
        limit: int,
    ) -> tuple[list[ItemT], Pagination]:
        """One page of ``table``'s rows as ``item``s, with the facts every list result carries
        (total, has_more, next_skip), in one statement (:func:`listing_statement`). With
        ``session_id``, the session's rows only, and NotFound (naming ``session_id``) when
        there is no such session."""
        check_page_bounds(skip, limit)
        statement = listing_statement(
            table, tuple(conditions), order_by, skip, limit, of_session=session_id is not None
        )
        leading = () if session_id is None else (session_id,)
        conn = await driver_connection(self.session)
        rows = await conn.fetch(statement, *leading, *arguments)
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        return listed_rows(rows, item, skip, limit)

    async def _fetch_one(self, item: type[ItemT], table: str, entity_id: uuid.UUID) -> ItemT:
        """The row of ``table`` with this id as ``item`` (one statement on the driver path), or
        NotFound."""
        conn = await driver_connection(self.session)
        row = await conn.fetchrow(_ROW_OF[table], entity_id)
        if row is None:
            raise NotFound(_entity(table), entity_id)
        return item.model_validate(dict(row))

    async def _transition(
        self,
        model: type[ModelT],
        entity_id: uuid.UUID,
        *,
        action: str,
        allowed_from: Iterable[str],
        values: Mapping[str, Any],
        extra_where: Iterable[ColumnElement[bool]] = (),
    ) -> ModelT:
        """Change a row's status atomically, only if it is currently in ``allowed_from``.

        One ``UPDATE … WHERE status IN (…) RETURNING`` statement: two concurrent callers can
        never both win. On a miss, a second read tells *why* (missing row vs wrong status).
        """
        allowed = tuple(allowed_from)
        status_col = model.__table__.c.status
        id_col = model.__table__.c.id
        stmt = (
            update(model)
            .where(id_col == entity_id, status_col.in_(allowed), *extra_where)
            .values(**values)
        )
        row = await self._update_returning(model, stmt)
        if row is not None:
            return row
        await self._refuse_transition(model, entity_id, action=action, allowed_from=allowed)

    async def _update_returning(self, model: type[ModelT], stmt: Update) -> ModelT | None:
        """Run ``stmt`` (an ``UPDATE`` of at most one row of ``model``) and return the updated
        row, or None when it matched nothing. The statement also returns the transaction's id,
        remembered for the unit of work (``remember_transaction_id``): it then need not ask for
        it before the commit — one round trip less per status change."""
        returning = stmt.returning(model, _TRANSACTION_ID).execution_options(populate_existing=True)
        found = (await self.session.execute(returning)).one_or_none()
        if found is None:
            return None
        row: ModelT = found[0]
        remember_transaction_id(self.session, found[1])
        return row

    async def _refuse_transition(
        self, model: type[ModelT], entity_id: uuid.UUID, *, action: str, allowed_from: Iterable[str]
    ) -> NoReturn:
        """Why a compare-and-set status change missed: NotFound, or InvalidTransition naming the
        current status (one read)."""
        current = await self._current_status(model.__tablename__, entity_id)
        entity = _entity(model.__tablename__)
        if current is None:
            raise NotFound(entity, entity_id)
        raise InvalidTransition(entity, entity_id, action, current, tuple(allowed_from))

    async def _current_status(self, table: str, entity_id: uuid.UUID) -> str | None:
        """The row's status now, or None when there is no such row. Sent through the driver
        (db.driver), so it also serves the units of work that use nothing else."""
        conn = await driver_connection(self.session)
        status = await conn.fetchval(_STATUS_OF[table], entity_id)
        return None if status is None else str(status)


def _entity(table: str) -> str:
    """What an error message calls a row of ``table``: ``crawl_sessions`` → "crawl session"."""
    return table.rstrip("s").replace("_", " ")


# The id of the transaction, read by the statement that makes it write (see _update_returning).
_TRANSACTION_ID = cast(func.pg_current_xact_id(), Text).label("xid")


# One statement per table (table names come from the models, not from input).
_TABLES = ("crawl_sessions", "pages", "bugs")
_STATUS_OF = {table: f"SELECT status FROM {table} WHERE id = $1" for table in _TABLES}
_ROW_OF = {table: f"SELECT * FROM {table} WHERE id = $1" for table in _TABLES}
