"""The unit of work: one pooled connection, one transaction at most, and how each repository
method runs in it.

Every statement of the data layer goes one way: a :class:`db.repositories.statements.Statement`, sent with
asyncpg on the connection of the caller's :class:`UnitOfWork`. The connection comes from the
engine's pool through SQLAlchemy's public API (``AsyncEngine.connect()``,
``get_raw_connection().driver_connection``), so the pool's size, timeout, liveness check and
connection settings apply; SQLAlchemy itself never sends a statement on it, so it never begins
a transaction behind this one's back. The unit of work sends ``BEGIN`` itself, lazily — right
before the first statement that needs it — and ``COMMIT`` or ``ROLLBACK`` when its block ends.

How a repository method runs is declared beside it, once, with one of three decorators:

- :func:`reads` — the method only reads. Outside a transaction its statements run in
  autocommit: no ``BEGIN``/``COMMIT``, one round trip per statement (under READ COMMITTED a
  transaction would not give the statements a common snapshot anyway).
- :func:`single_write` — the method's one write statement is atomic on its own. Outside a
  transaction it runs in autocommit and is committed when it answers, even if the block fails
  later; a second write statement in the method is refused as a bug. For the frontier claim,
  whose contract is at-least-once anyway: an unanswered claim's lease runs out and its pages
  are offered again.
- :func:`writes` — the method's statements run in the unit of work's transaction (begun if it
  was not), committed when the block exits normally, rolled back on any exception.

A write statement sent outside both (a method without its declaration) is refused before it
runs, so a missing declaration cannot make a write commit alone.

When every transaction must carry settings — a tenant binding (:mod:`db.connection.tenancy`), PgBouncer's
per-transaction settings (:mod:`db.connection.pgbouncer`) — every unit of work that sends a statement runs
in a transaction whose first statement applies them, reads included.
"""

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from sqlalchemy.sql.expression import ClauseElement

    from db.repositories.statements import Rows
    from db.rules.secrets import CredentialCipher

# Read just before a commit that wrote: the transaction's id, or NULL when it wrote nothing.
TRANSACTION_ID_SQL = "SELECT pg_current_xact_id_if_assigned()::text"

P = ParamSpec("P")
R = TypeVar("R")


class UnitOfWork:
    """What ``Database.session()`` yields and every repository works in.

    The connection is checked out on the first statement, not before: a block that sends
    nothing (a refusal of bad input) costs no connection."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cipher: "CredentialCipher | None" = None,
        transaction_settings: tuple[tuple[str, tuple[Any, ...]], ...] = (),
    ) -> None:
        self._engine = engine
        # Repositories find the credential cipher here (db.rules.secrets), not in arguments.
        self.cipher = cipher
        # Statements (SQL, arguments) every transaction starts with, after BEGIN.
        self._transaction_settings = transaction_settings
        self._connection: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._wants_transaction = bool(transaction_settings)
        self._in_transaction = False
        self._autocommit_writes = 0
        self.wrote = False
        self._xid: str | None = None

    # --- what the repositories and statements use ------------------------------------------

    def begin(self) -> None:
        """Run the rest of the unit of work in one transaction (``BEGIN`` is sent before the
        next statement, not now)."""
        self._wants_transaction = True

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    async def driver(self, *, writes: bool) -> asyncpg.Connection:
        """The asyncpg connection for the next statement, with the transaction begun when the
        unit of work wants one. ``writes``: the statement changes rows — refused outside a
        transaction unless a :func:`single_write` method allows one."""
        driver = self._driver
        if driver is None:
            driver = await self._check_out()
        if self._wants_transaction and not self._in_transaction:
            await driver.execute("BEGIN")
            self._in_transaction = True
            for statement, arguments in self._transaction_settings:
                await driver.execute(statement, *arguments)
        if writes:
            if not self._in_transaction:
                if self._autocommit_writes < 1:
                    raise RuntimeError(
                        "a write statement outside a transaction: declare the repository "
                        "method @writes (or @single_write for one atomic statement)"
                    )
                self._autocommit_writes -= 1
            self.wrote = True
        return driver

    @contextlib.contextmanager
    def one_autocommit_write(self) -> Iterator[None]:
        """Within the block, one write statement may run in autocommit (:func:`single_write`)."""
        self._autocommit_writes = 1
        try:
            yield
        finally:
            self._autocommit_writes = 0

    async def execute(
        self, statement: "ClauseElement | str", params: Mapping[str, Any] | None = None
    ) -> "Rows":
        """Run an ad-hoc statement (SQLAlchemy Core, ``text()`` or SQL with ``:named``
        parameters) in the unit of work's transaction, as ``AsyncSession.execute`` would: for
        scripts and tests. The repositories use their registered statements."""
        from db.repositories.statements import Rows, Statement

        self.begin()
        rows, count = await Statement.adhoc(statement).fetch_with_count(self, **dict(params or {}))
        return Rows(rows, count)

    async def scalar(
        self, statement: "ClauseElement | str", params: Mapping[str, Any] | None = None
    ) -> Any:
        """The first column of the first row of an ad-hoc statement (see :meth:`execute`)."""
        return (await self.execute(statement, params)).scalar()

    @property
    def known_transaction_id(self) -> str | None:
        """The transaction's id, when one of its statements returned it."""
        return self._xid

    def remember_transaction_id(self, xid: object) -> None:
        """Record the id of the current transaction, read by one of its own statements
        (``pg_current_xact_id()``), so the commit need not ask for it."""
        if xid is not None:
            self._xid = str(xid)

    # --- what Database.session() uses ------------------------------------------------------

    async def transaction_id(self) -> str | None:
        """The id of the open transaction, or None when it has written nothing (so a lost
        commit answer cannot hide a change)."""
        if not (self._in_transaction and self.wrote) or self._driver is None:
            return None
        if self._xid is None:
            try:
                xid = await self._driver.fetchval(TRANSACTION_ID_SQL)
            except asyncpg.InFailedSQLTransactionError:
                return None  # the transaction already failed (the block caught it): no commit
            self._xid = None if xid is None else str(xid)
        return self._xid

    async def commit(self) -> None:
        if self._in_transaction and self._driver is not None:
            self._in_transaction = False
            await self._driver.execute("COMMIT")

    async def close(self, *, broken: bool) -> None:
        """Give the connection back: rolled back first when a transaction is still open;
        dropped instead of pooled when it may be broken (lost, cancelled mid-statement, its
        rollback failed). Runs to its end even when the caller is being cancelled, so the
        pool's count of connections stays right."""
        connection, self._connection = self._connection, None
        driver, self._driver = self._driver, None
        in_transaction, self._in_transaction = self._in_transaction, False
        if connection is None:
            return
        await run_to_completion(_give_back(connection, driver, broken, in_transaction))

    async def _check_out(self) -> asyncpg.Connection:
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
        except BaseException:
            await run_to_completion(connection.close())
            raise
        if not isinstance(driver, asyncpg.Connection):
            await run_to_completion(connection.close())
            raise RuntimeError(f"the engine's driver is not asyncpg: {type(driver).__name__}")
        self._connection, self._driver = connection, driver
        return driver


async def _give_back(
    connection: AsyncConnection,
    driver: asyncpg.Connection | None,
    broken: bool,
    in_transaction: bool,
) -> None:
    if not broken and in_transaction and driver is not None:
        try:
            await driver.execute("ROLLBACK")
        except Exception:
            broken = True
    if broken:
        await connection.invalidate()
    await connection.close()


async def run_to_completion(work: Coroutine[Any, Any, None]) -> None:
    """Await ``work`` in a task of its own, to its end, even if the caller is cancelled
    meanwhile (the cancellation is re-raised afterwards) — for clean-up that must not be
    abandoned halfway, like returning a connection to its pool."""
    task = asyncio.ensure_future(work)
    cancelled: BaseException | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done() and task.cancelled():
                raise
            cancelled = err
    task.result()
    if cancelled is not None:
        raise cancelled


# --- how a repository method runs -----------------------------------------------------------


class HasUnitOfWork(Protocol):
    session: UnitOfWork


S = TypeVar("S", bound=HasUnitOfWork)
Method = Callable[Concatenate[S, P], Awaitable[R]]


def reads(method: Method[S, P, R]) -> Method[S, P, R]:
    """The method only reads: outside a transaction, its statements run in autocommit."""
    method.__dict__["runs_as"] = "reads"
    return method


def writes(method: Method[S, P, R]) -> Method[S, P, R]:
    """The method's statements run in the unit of work's transaction (begun if need be)."""

    @functools.wraps(method)
    async def in_transaction(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        self.session.begin()
        return await method(self, *args, **kwargs)

    in_transaction.__dict__["runs_as"] = "writes"
    return in_transaction


def single_write(method: Method[S, P, R]) -> Method[S, P, R]:
    """The method sends one write statement, atomic on its own: outside a transaction it runs
    in autocommit (see the module docstring for what that promises)."""

    @functools.wraps(method)
    async def one_statement(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.session.one_autocommit_write():
            return await method(self, *args, **kwargs)

    one_statement.__dict__["runs_as"] = "single_write"
    return one_statement
