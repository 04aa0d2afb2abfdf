"""What every repository shares: the unit of work it runs in, a page of a list and a row by id
in one statement each (bounded pagination included), and the compare-and-set status change
that keeps life cycles honest under concurrency."""

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Generic, NoReturn, TypeVar

from pydantic import BaseModel

from db.connection.unit_of_work import UnitOfWork
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.repositories.statements import Statement, family
from db.schema_base import Pagination

ItemT = TypeVar("ItemT", bound=BaseModel)

MAX_PAGE_SIZE = 100
# Appended to what a write statement returns: the id of its transaction, so the unit of work
# need not ask for it before the commit (UnitOfWork.remember_transaction_id).
RETURNING_XID = "pg_current_xact_id()::text AS xid"


def check_page_bounds(skip: int, limit: int, max_limit: int = MAX_PAGE_SIZE) -> None:
    """Every list query is bounded: refuse (do not clamp) out-of-range pagination."""
    if not 1 <= limit <= max_limit:
        raise InvalidArgument("limit", f"must be between 1 and {max_limit}, got {limit}")
    if skip < 0:
        raise InvalidArgument("skip", f"must be 0 or more, got {skip}")


def sql_list(values: Iterable[StrEnum]) -> str:
    """``'a', 'b'``: enum values for an ``IN (…)`` of a statement (never input)."""
    return ", ".join(f"'{value.value}'" for value in values)


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


# A page of a list in one statement: the count of the matching rows and the page itself —
# and, for a session's rows, the session check (no row at all: no such session). A LEFT JOIN
# keeps the count's row when the page is empty: its row columns are then NULL.
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
WHERE crawl.id = :session_id
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
    returns: type[BaseModel],
    columns: str = "*",
) -> Statement:
    """The statement of one page of ``table``'s rows matching every condition (SQL from the
    code with ``:named`` parameters, never input; ``:session_id`` with ``of_session``), ordered
    by ``order_by`` (which must end with a unique column, or pages could overlap). ``skip``
    and ``limit`` are literals, checked by the caller: PostgreSQL then plans the ``LIMIT``
    knowing it, and keeps the plan per connection — one prepared statement per page size and
    offset (docs/benchmarks.md, fix 12). ``columns``: the row columns, as SQL, ``id`` among
    them."""
    template = _SESSION_LISTING if of_session else _TABLE_LISTING
    sql = template.format(
        table=table,
        where=" AND ".join(conditions) or "true",
        order_by=order_by,
        skip=int(skip),
        limit=int(limit),
        columns=columns,
    )
    return Statement(f"list {table}", sql, writes=False, returns=returns, register=False)


def listed_rows(
    rows: Sequence[Mapping[str, Any]], item: type[ItemT], skip: int, limit: int
) -> tuple[list[ItemT], Pagination]:
    """The items and pagination facts of a :func:`listing_statement`'s rows (at least one: a
    page past the end is one row of NULL row columns and the total)."""
    items = [item.model_validate(dict(row)) for row in rows if row["id"] is not None]
    return items, Pagination.of(int(rows[0]["total"]), skip, limit, len(items))


class Transition(Generic[ItemT]):
    """A status change of one row, defined once. Its statement, named "{table} {action}", is
    the compare-and-set ``UPDATE … WHERE id = :id AND status IN (allowed_from) … RETURNING``,
    so two concurrent callers can never both win; no row: it matched nothing, and
    :meth:`Repository._transition` says why ("cannot {action} …", naming ``allowed_from``).
    The changed row is read into ``returns``. ``assignments``: the ``SET`` list, ``:named``
    parameters named after their columns; ``updated_at`` is set here, for every change."""

    def __init__(
        self,
        table: str,
        action: str,
        allowed_from: Iterable[StrEnum],
        assignments: str,
        *,
        returns: type[ItemT],
    ) -> None:
        self.table = table
        self.action = action
        self.allowed_from = tuple(allowed_from)
        self.returns = returns
        self.statement = Statement(
            f"{table} {action}",
            f"""
UPDATE {table} SET {assignments}, updated_at = now()
WHERE id = :id AND status IN ({sql_list(self.allowed_from)})
RETURNING *, {RETURNING_XID}
""",
            writes=True,
            returns=returns,
        )


class Repository:
    """Base of the three repositories: holds the caller's unit of work."""

    def __init__(self, session: UnitOfWork) -> None:
        self.session = session

    async def _list(
        self,
        item: type[ItemT],
        table: str,
        *,
        session_id: uuid.UUID | None = None,
        conditions: Sequence[str] = (),
        arguments: Mapping[str, Any] | None = None,
        order_by: str,
        skip: int,
        limit: int,
    ) -> tuple[list[ItemT], Pagination]:
        """One page of ``table``'s rows as ``item``s, with the facts every list result carries
        (total, has_more, next_skip), in one statement (:func:`listing_statement`). With
        ``session_id``, the session's rows only, and NotFound (naming ``session_id``) when
        there is no such session."""
        check_page_bounds(skip, limit)
        of_session = session_id is not None
        statement = listing_statement(
            table, tuple(conditions), order_by, skip, limit, of_session=of_session, returns=item
        )
        params = dict(arguments or {})
        if of_session:
            params["session_id"] = session_id
        rows = await statement.fetch(self.session, **params)
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        return listed_rows(rows, item, skip, limit)

    async def _fetch_one(self, item: type[ItemT], table: str, entity_id: uuid.UUID) -> ItemT:
        """The row of ``table`` with this id as ``item`` (one statement), or NotFound."""
        row = await ROW_OF[table].fetchrow(self.session, id=entity_id)
        if row is None:
            raise NotFound(entity_name(table), entity_id)
        return item.model_validate(dict(row))

    async def _transition(
        self, change: Transition[ItemT], entity_id: uuid.UUID, **params: Any
    ) -> ItemT:
        """Make the status change; on a miss, one read tells *why* (missing row vs wrong
        status)."""
        row = await change.statement.fetchrow(self.session, id=entity_id, **params)
        if row is None:
            await self._refuse_transition(
                change.table, entity_id, action=change.action, allowed_from=change.allowed_from
            )
        self.session.remember_transaction_id(row["xid"])
        return change.returns.model_validate(dict(row))

    async def _refuse_transition(
        self, table: str, entity_id: uuid.UUID, *, action: str, allowed_from: Iterable[str]
    ) -> NoReturn:
        """Why a compare-and-set status change missed: NotFound, or InvalidTransition naming the
        current status (one read)."""
        current = await self._current_status(table, entity_id)
        entity = entity_name(table)
        if current is None:
            raise NotFound(entity, entity_id)
        raise InvalidTransition(entity, entity_id, action, current, tuple(allowed_from))

    async def _current_status(self, table: str, entity_id: uuid.UUID) -> str | None:
        """The row's status now, or None when there is no such row."""
        status = await STATUS_OF[table].fetchval(self.session, id=entity_id)
        return None if status is None else str(status)


def entity_name(table: str) -> str:
    """What an error message calls a row of ``table``: ``crawl_sessions`` → "crawl session"."""
    return table.rstrip("s").replace("_", " ")


# One statement per table (table names come from the models, not from input).
_TABLES = ("crawl_sessions", "pages", "bugs")
STATUS_OF = {
    table: Statement(f"{table} status", f"SELECT status FROM {table} WHERE id = :id", writes=False)
    for table in _TABLES
}
ROW_OF = {
    table: Statement(f"{table} row", f"SELECT * FROM {table} WHERE id = :id", writes=False)
    for table in _TABLES
}


def _sample_listing() -> Statement:
    from db.page_schemas import PagePublic

    return listing_statement(
        "pages", ("status = :status",), "depth, id", 0, 10, of_session=True, returns=PagePublic
    )


family("list", _sample_listing)
