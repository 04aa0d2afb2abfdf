"""What every repository shares: the session it works in, bounds for pagination, and the
compare-and-set status change that keeps life cycles honest under concurrency."""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from db.driver import driver_connection
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.models import Base, CrawlSession
from db.schemas import Pagination

ModelT = TypeVar("ModelT", bound=Base)

MAX_PAGE_SIZE = 100


def check_page_bounds(skip: int, limit: int, max_limit: int = MAX_PAGE_SIZE) -> None:
    """Every list query is bounded: refuse (do not clamp) out-of-range pagination."""
    if not 1 <= limit <= max_limit:
        raise InvalidArgument("limit", f"must be between 1 and {max_limit}, got {limit}")
    if skip < 0:
        raise InvalidArgument("skip", f"must be 0 or more, got {skip}")


def count_by(
    column: Any, values: Iterable[str], where: ColumnElement[bool] | None = None
) -> list[Any]:
    """``count(*) FILTER (WHERE column = value)`` for every value: one pass, no GROUP BY."""
    extra = [] if where is None else [where]
    return [
        func.count().filter(column == value, *extra).label(f"{column.key}__{value}")
        for value in values
    ]


def count_filters_sql(column: str, values: Iterable[str]) -> str:
    """``count(*) FILTER (WHERE column = 'value') AS "column__value"`` for every value, as SQL
    text for the driver path, labelled as :func:`count_by` labels them (the values are an
    enum's, never input)."""
    return ",\n        ".join(
        f"count(*) FILTER (WHERE {column} = '{value}') AS \"{column}__{value}\"" for value in values
    )


def counts_from_row(row: Mapping[Any, Any], column: str, values: Iterable[str]) -> dict[str, int]:
    return {value: int(row[f"{column}__{value}"]) for value in values}


class Repository:
    """Base of the three repositories: holds the caller's ``AsyncSession`` (the unit of work)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _require_session(self, session_id: uuid.UUID) -> None:
        """NotFound (naming ``session_id``) unless the crawl session exists."""
        found = await self.session.scalar(
            select(CrawlSession.id).where(CrawlSession.id == session_id)
        )
        if found is None:
            raise NotFound("crawl session", session_id, field="session_id")

    async def _paginate(
        self,
        model: type[ModelT],
        where: Sequence[Any],
        order_by: Sequence[Any],
        skip: int,
        limit: int,
    ) -> tuple[Sequence[ModelT], Pagination]:
        """One page of ``model`` rows and the facts every list result carries (total,
        has_more, next_skip): the bounds check, the count and the page query in one place."""
        check_page_bounds(skip, limit)
        total = await self.session.scalar(select(func.count()).select_from(model).where(*where))
        rows = (
            await self.session.scalars(
                select(model).where(*where).order_by(*order_by).offset(skip).limit(limit)
            )
        ).all()
        return rows, Pagination.of(int(total or 0), skip, limit, len(rows))

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
            .returning(model)
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is not None:
            return row
        await self._refuse_transition(model, entity_id, action=action, allowed_from=allowed)

    async def _refuse_transition(
        self, model: type[ModelT], entity_id: uuid.UUID, *, action: str, allowed_from: Iterable[str]
    ) -> NoReturn:
        """Why a compare-and-set status change missed: NotFound, or InvalidTransition naming the
        current status (one read)."""
        current = await self._current_status(model.__tablename__, entity_id)
        entity = model.__tablename__.rstrip("s").replace("_", " ")
        if current is None:
            raise NotFound(entity, entity_id)
        raise InvalidTransition(entity, entity_id, action, current, tuple(allowed_from))

    async def _current_status(self, table: str, entity_id: uuid.UUID) -> str | None:
        """The row's status now, or None when there is no such row. Sent through the driver
        (db.driver), so it also serves the units of work that use nothing else."""
        conn = await driver_connection(self.session)
        status = await conn.fetchval(_STATUS_OF[table], entity_id)
        return None if status is None else str(status)


# One statement per table with a status (table names come from the models, not from input).
_STATUS_OF = {
    table: f"SELECT status FROM {table} WHERE id = $1"
    for table in ("crawl_sessions", "pages", "bugs")
}
