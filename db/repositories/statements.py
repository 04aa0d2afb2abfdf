"""Statements: every SQL statement the data layer sends, compiled once, named, registered.

A :class:`Statement` is built from SQLAlchemy Core (a statement over the models' tables) or
from SQL text with ``:named`` parameters, compiled once at import with PostgreSQL's asyncpg
dialect to the driver's ``$n`` form, and sent on the unit of work's asyncpg connection
(:mod:`db.connection.unit_of_work`): no per-call compilation, no ORM loading — the few microseconds of
Python per statement that made a call's cost (docs/benchmarks.md).

Callers pass parameters by name, never by position, so two of them cannot be swapped silently;
every statement is registered (:data:`REGISTRY`, or a family with a sample in
:data:`FAMILIES`) and ``tests/db/test_statements.py`` prepares each one against the migrated
schema: its parameters must be what it assigns them to (``SET col = :col``, ``INSERT (col…)
VALUES (:col…)``), and the columns it returns must cover the pydantic model it is read into.
A renamed column or a swapped pair fails that test.
"""

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import asyncpg
from pydantic import BaseModel
from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from db.connection.unit_of_work import UnitOfWork

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
# ``:name::type`` is not a parameter to SQLAlchemy (the cast's colons hide it): write
# ``CAST(:name AS type)``. Found at import, where it would otherwise send a literal ":name".
_HIDDEN_PARAMETER = re.compile(r"(?<![:\w]):[A-Za-z_]\w*::")

_CHANGING = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})

REGISTRY: dict[str, "Statement"] = {}
# Statements built per literal (a LIMIT): a sample of each, for the schema test.
FAMILIES: dict[str, Callable[[], "Statement"]] = {}


class Statement:
    """One SQL statement: its name, its source, its ``$n`` form and parameter names.

    ``writes``: it changes rows (refused outside a transaction unless a ``@single_write``
    method runs it). ``returns``: the model its rows are read into, checked against its result
    columns by the schema test."""

    def __init__(
        self,
        name: str,
        source: str | ClauseElement,
        *,
        writes: bool,
        returns: type[BaseModel] | None = None,
        register: bool = True,
    ) -> None:
        clause: ClauseElement = text(source) if isinstance(source, str) else source
        compiled = clause.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)  # a statement, not DDL
        self.name = name
        self.writes = writes
        self.returns = returns
        self.source = source if isinstance(source, str) else str(compiled)
        self.sql = compiled.string
        self.is_text = isinstance(clause, TextClause)
        self.parameter_names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values Core put in the statement itself (``.values(status='error')``).
        self._fixed = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if name in self.parameter_names and not bind.required
        }
        if _HIDDEN_PARAMETER.search(self.sql):
            raise ValueError(f"statement {name}: write CAST(:p AS type), not :p::type")
        if register:
            if name in REGISTRY or name in FAMILIES:
                raise ValueError(f"two statements are named {name!r}")
            REGISTRY[name] = self

    @classmethod
    def adhoc(cls, source: str | ClauseElement) -> "Statement":
        """An unregistered statement (UnitOfWork.execute, scripts, tests): it may write."""
        return cls("adhoc", source, writes=True, register=False)

    def __repr__(self) -> str:
        return f"Statement({self.name!r})"

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``params`` (by name); a missing one is a bug."""
        try:
            return [
                params[name] if name in params else self._fixed[name]
                for name in self.parameter_names
            ]
        except KeyError as missing:
            raise TypeError(f"statement {self.name} needs parameter {missing}") from None

    async def fetch(self, uow: UnitOfWork, **params: Any) -> list[asyncpg.Record]:
        driver = await uow.driver(writes=self.writes)
        rows: list[asyncpg.Record] = await driver.fetch(self.sql, *self.arguments(params))
        return rows

    async def fetchrow(self, uow: UnitOfWork, **params: Any) -> asyncpg.Record | None:
        driver = await uow.driver(writes=self.writes)
        row: asyncpg.Record | None = await driver.fetchrow(self.sql, *self.arguments(params))
        return row

    async def fetchval(self, uow: UnitOfWork, **params: Any) -> Any:
        driver = await uow.driver(writes=self.writes)
        return await driver.fetchval(self.sql, *self.arguments(params))

    async def execute(self, uow: UnitOfWork, **params: Any) -> int:
        """Run it for its effect; returns how many rows it changed (the command tag's count)."""
        driver = await uow.driver(writes=self.writes)
        status: str = await driver.execute(self.sql, *self.arguments(params))
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def fetch_with_count(
        self, uow: UnitOfWork, **params: Any
    ) -> tuple[list[asyncpg.Record], int]:
        """The rows and the row count (what it changed, or returned) — for ad-hoc use, where
        whether the statement returns rows is not known: one without ``RETURNING`` that
        changes rows is sent for its command tag."""
        words = self.sql.lstrip().split(None, 1)
        changes = bool(words) and words[0].upper() in _CHANGING
        if changes and "RETURNING" not in self.sql.upper():
            return [], await self.execute(uow, **params)
        rows = await self.fetch(uow, **params)
        return rows, len(rows)

    async def fetch_aggregate(self, uow: UnitOfWork, **params: Any) -> asyncpg.Record | None:
        """The one row of an aggregate over many rows (statistics), or None when there is none.

        Not ``fetchrow``: asyncpg asks the server for one row at a time then (a row limit on
        the portal), and PostgreSQL plans no parallel workers for a portal it may have to
        suspend (docs/benchmarks.md: statistics of 100,000 rows ~25 % faster fetched whole)."""
        rows = await self.fetch(uow, **params)
        return rows[0] if rows else None


def family(name: str, sample: Callable[[], Statement]) -> None:
    """Register a family of statements built per literal, with a sample of it."""
    if name in REGISTRY or name in FAMILIES:
        raise ValueError(f"two statements are named {name!r}")
    FAMILIES[name] = sample


class Row(Sequence[Any]):
    """A row of an ad-hoc statement: by position, by key, or as an attribute (SQLAlchemy's
    ``Row`` manners, for scripts and tests)."""

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getitem__(self, key: Any) -> Any:
        return self._record[key]

    def __len__(self) -> int:
        return len(self._record)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None

    def _asdict(self) -> dict[str, Any]:
        return dict(self._record)


class Rows:
    """The rows of an ad-hoc statement, read like SQLAlchemy's ``Result``."""

    def __init__(self, records: list[asyncpg.Record], rowcount: int = -1) -> None:
        self._rows = [Row(r) for r in records]
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    def all(self) -> list[Row]:
        return list(self._rows)

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Row:
        if len(self._rows) != 1:
            raise ValueError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def one_or_none(self) -> Row | None:
        if len(self._rows) > 1:
            raise ValueError(f"expected at most one row, got {len(self._rows)}")
        return self.first()

    def scalar(self) -> Any:
        first = self.first()
        return None if first is None or not len(first) else first[0]

    def scalars(self) -> "Scalars":
        return Scalars(row[0] for row in self._rows)


class Scalars(list[Any]):
    """The first column of every row (``Result.scalars()``)."""

    def all(self) -> list[Any]:
        return list(self)
