"""The ``Database``: one pooled asyncpg engine and a unit-of-work ``session()`` per caller.

Connection failures are turned into :class:`db.errors.DatabaseUnavailable` here, once, so no
caller ever sees driver text (which may carry host names or SQL). So are a full pool
(:class:`ServerBusy`) and a statement cut off by ``statement_timeout`` (:class:`StatementTimeout`).

A connection lost *during* the commit is the one ambiguous case: the commit may have happened
with only its answer lost. ``session()`` then asks the database what became of the transaction
(its id is read just before the commit), so a caller is told "nothing was changed" only when
that is true, and the committed case is reported as the success it was.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from db.connection import liveness, pgbouncer, schema_version
from db.connection.config import DatabaseConfig
from db.connection.tenancy import bind_tenant_statement
from db.connection.unit_of_work import UnitOfWork
from db.errors import (
    CommitOutcomeUnknown,
    ConcurrentUpdate,
    DatabaseUnavailable,
    DomainError,
    ServerBusy,
    StatementTimeout,
)
from db.models import Base
from db.rules.secrets import STORED_CREDENTIALS, CredentialCipher

log = logging.getLogger(__name__)

APPLICATION_NAME = "bughive-mcp"
STATEMENT_LOGGER = "db.repositories.statements"  # where echo logs the statements sent

# Errors that mean "could not talk to the database", as opposed to "the database said no".
_UNAVAILABLE = (OSError, TimeoutError, ConnectionError, sa_exc.TimeoutError)
# SQLSTATEs of the same: connection exceptions (class 08), the server shutting down or starting
# up (57P01-57P03), too many connections (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
QUERY_CANCELED = "57014"
# PostgreSQL ended the transaction to resolve a conflict: deadlock_detected,
# serialization_failure. Retrying the same call is the documented remedy.
ROLLED_BACK_BY_CONFLICT = ("40P01", "40001")
_TRANSACTION_STATUS = text("SELECT pg_xact_status(CAST(CAST(:xid AS text) AS xid8))")
# How many times run() tries a unit of work that PostgreSQL keeps rolling back for a conflict,
# and the longest pause before the last try (each pause is random, up to twice the previous).
CONFLICT_ATTEMPTS = 5
_LAST_CONFLICT_PAUSE_SECONDS = 0.2
T = TypeVar("T")
# How long a lost commit's transaction may still show 'in progress' (its backend finishing).
_SETTLE_SECONDS = 2.0


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and what it wraps: SQLAlchemy's ``orig``, the adapter's ``__cause__``…"""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return chain


def _sqlstate(err: BaseException) -> str:
    for cause in _causes(err):
        code = getattr(cause, "sqlstate", None)
        if isinstance(code, str) and code:
            return code
    return ""


def _is_unavailable(err: BaseException) -> bool:
    if isinstance(err, _UNAVAILABLE):
        return True
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    if isinstance(err, sa_exc.InterfaceError | sa_exc.OperationalError):
        return True
    if _sqlstate(err).startswith(_UNAVAILABLE_STATES):
        return True
    names = {type(cause).__name__ for cause in _causes(err)}
    return not names.isdisjoint(
        {
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
            "CannotConnectNowError",
            "AdminShutdownError",
            "TooManyConnectionsError",
            "InterfaceError",
            "InternalClientError",  # the connection's protocol state is broken
        }
    )


def _echo_statements(engine: AsyncEngine) -> None:
    """``echo``: every statement sent, at INFO on :data:`STATEMENT_LOGGER`, which the
    process's own log configuration (stderr, once) then writes — the SQL only, never its
    parameters (they carry secrets: the credentials' token, anything a caller sent)."""
    logger = logging.getLogger(STATEMENT_LOGGER)
    logger.setLevel(logging.INFO)

    @event.listens_for(engine.sync_engine.pool, "connect")
    def _log_statements(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(
            lambda sent: logger.info("%s", sent.query)
        )


def resolve_url(config: DatabaseConfig) -> URL:
    """The configured URL, or the embedded PostgreSQL's when none is configured (blocking)."""
    if config.url is not None:
        return config.url
    from db.connection.embedded import start_embedded_server

    return start_embedded_server(config.embedded_data_dir)


class Database:
    """Engine + session factory for one database. Create it once per process."""

    def __init__(self, config: DatabaseConfig | None = None, *, url: URL | None = None) -> None:
        self.config = config or DatabaseConfig()
        self.url = url or resolve_url(self.config)
        server_settings = {"application_name": APPLICATION_NAME}
        if self.config.read_only:
            server_settings["default_transaction_read_only"] = "on"
        if self.config.statement_timeout_ms:
            server_settings["statement_timeout"] = str(self.config.statement_timeout_ms)
        engine_args: dict[str, Any] = {
            # Parameters carry secrets (the credentials' Fernet token, anything a caller
            # sent): never in a log line or an error's text, whatever the settings.
            "hide_parameters": True,
            # Replaced by db.connection.liveness: the same protection without 3 round trips per call.
            "pool_pre_ping": False,
            "connect_args": {
                "server_settings": server_settings,
                "timeout": self.config.connect_timeout,
            },
        }
        if self.config.pgbouncer:
            engine_args["connect_args"] = pgbouncer.connect_args(engine_args["connect_args"])
        if self.config.testing:
            engine_args["poolclass"] = NullPool
        else:
            engine_args.update(
                pool_size=self.config.pool_size,
                max_overflow=self.config.max_overflow,
                pool_timeout=self.config.pool_timeout,
                pool_recycle=self.config.pool_recycle,
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **engine_args)
        if self.config.echo:
            _echo_statements(self.engine)
        per_transaction = (
            pgbouncer.per_transaction_statement(server_settings) if self.config.pgbouncer else None
        )
        if per_transaction is not None:
            pgbouncer.set_per_transaction(self.engine, server_settings)  # migrations, scripts
        # Sent after BEGIN by every unit of work (PgBouncer mode: settings per transaction).
        self._transaction_settings: tuple[tuple[str, tuple[Any, ...]], ...] = (
            () if per_transaction is None else ((per_transaction, ()),)
        )
        if self.config.pool_pre_ping:
            liveness.install(self.engine, self.config.pool_pre_ping_idle_seconds)
        keys = self.config.encryption_keys
        self.cipher = CredentialCipher(keys) if keys else None

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    async def run(
        self,
        work: Callable[[UnitOfWork], Awaitable[T]],
        *,
        tenant: str | None = None,
        attempts: int = CONFLICT_ATTEMPTS,
    ) -> T:
        """``await work(uow)`` in a unit of work (:meth:`session`), tried again — up to
        ``attempts`` times in all, after a short random pause — while PostgreSQL rolls it back
        to break a deadlock or a serialization failure (:class:`ConcurrentUpdate`).

        Safe because such a unit of work rolled back whole: nothing of it stands, and nothing
        but the collision made it fail, so the same work may well succeed now. The lock order
        of every write (:mod:`db.repositories`) makes deadlocks rare, not impossible (a
        foreign-key check, a unique index), so callers see a conflict only when it persists."""
        attempts = max(attempts, 1)
        for attempt in range(1, attempts + 1):
            try:
                async with self.session(tenant) as uow:
                    return await work(uow)
            except ConcurrentUpdate:
                if attempt >= attempts:
                    raise
                pause = _LAST_CONFLICT_PAUSE_SECONDS / 2 ** (attempts - 1 - attempt)
                log.info("conflict, trying again (%d of %d)", attempt + 1, attempts)
                await asyncio.sleep(random.uniform(0, pause))
        raise AssertionError("unreachable: the last attempt returns or raises")

    @asynccontextmanager
    async def session(self, tenant: str | None = None) -> AsyncIterator[UnitOfWork]:
        """A unit of work (:class:`db.connection.unit_of_work.UnitOfWork`): commits when the block exits
        normally, rolls back on any exception. How each repository method runs in it — a read
        in autocommit, one write statement, a transaction — the method declares itself.

        With ``tenant``, the first statement of its transaction binds it to that tenant
        (multi-tenant mode, see :mod:`db.connection.tenancy`); the binding ends with the transaction.

        What the caller may rely on when it fails:

        - :class:`DatabaseUnavailable` (connection failed or lost before the commit),
          :class:`ServerBusy` (no free connection within ``pool_timeout``) and
          :class:`StatementTimeout`: the transaction did not happen, nothing was changed;
        - connection lost *during* the commit: the database is asked whether the transaction
          committed (its id was read just before the commit, or returned by the statement that
          wrote). Committed → the block's work stands and ``session()`` exits normally;
          aborted → :class:`DatabaseUnavailable`; the database cannot say (it is down) →
          :class:`CommitOutcomeUnknown`, whose message says the change may have been saved.

        A write that ran in autocommit (``@single_write``) whose answer is lost cannot be
        settled: the caller gets :class:`DatabaseUnavailable` although it may have run."""
        settings = self._transaction_settings
        if tenant is not None:
            settings = (*settings, bind_tenant_statement(tenant))
        lost_commit: BaseException | None = None
        xid: str | None = None
        try:
            uow = UnitOfWork(self.engine, cipher=self.cipher, transaction_settings=settings)
            try:
                yield uow
                if not self.config.read_only:
                    xid = await uow.transaction_id()
                try:
                    await uow.commit()
                except Exception as err:
                    if not _is_unavailable(err) or isinstance(err, sa_exc.TimeoutError):
                        raise
                    lost_commit = err
            except BaseException as err:
                # Lost, cancelled mid-statement: the connection may be broken in a way the
                # pool never saw — drop it, do not pool it for the next caller.
                broken = not isinstance(err, Exception) or _is_unavailable(err)
                await uow.close(broken=broken)
                raise
            else:
                await uow.close(broken=lost_commit is not None)
        except Exception as err:
            mapped = self._domain_error(err)
            if mapped is None:
                raise
            log.warning("%s: %s", type(mapped).__name__, type(err).__name__)
            raise mapped from err
        if lost_commit is not None:
            await self._settle_lost_commit(xid, lost_commit)

    def _domain_error(self, err: Exception) -> DomainError | None:
        """The caller-safe error for a failure of the database itself, or None."""
        if isinstance(err, sa_exc.TimeoutError):  # the pool's timeout, not the network's
            return ServerBusy(
                self.config.pool_size + self.config.max_overflow, self.config.pool_timeout
            )
        if _sqlstate(err) in ROLLED_BACK_BY_CONFLICT:
            return ConcurrentUpdate()
        if _sqlstate(err) == QUERY_CANCELED and "statement timeout" in str(err):
            return StatementTimeout(self.config.statement_timeout_ms)
        if _sqlstate(err) == QUERY_CANCELED:
            return DatabaseUnavailable("database unavailable: the server cancelled the statement")
        if _is_unavailable(err):
            return DatabaseUnavailable()
        return None

    async def _settle_lost_commit(self, xid: str | None, err: BaseException) -> None:
        """Returns when the transaction whose commit answer was lost did commit (or wrote
        nothing, so its outcome does not matter); raises otherwise."""
        if xid is None:
            return
        status = await self.transaction_status(xid)
        log.warning("connection lost during commit: transaction %s is %s", xid, status)
        if status == "committed":
            return
        if status == "aborted":
            raise DatabaseUnavailable(
                "database unavailable: the connection was lost before the commit completed"
            ) from err
        raise CommitOutcomeUnknown() from err

    async def transaction_status(self, xid: str) -> str | None:
        """``committed``, ``aborted`` or ``in progress`` for a transaction id; None when the
        database cannot be asked. For up to 2 s it asks again while the transaction is still
        in progress (its backend finishing) or the question's own connection fails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SETTLE_SECONDS
        delay = 0.01
        while True:
            status: str | None = None
            try:
                async with self.engine.connect() as conn:
                    answer = await conn.scalar(_TRANSACTION_STATUS, {"xid": xid})
                status = None if answer is None else str(answer)
                if status != "in progress":
                    return status
            except Exception as err:
                if not _is_unavailable(err) or isinstance(err, sa_exc.TimeoutError):
                    log.warning("cannot ask for transaction %s: %s", xid, type(err).__name__)
                    return None
            if loop.time() >= deadline:
                log.warning("transaction %s still unsettled after %s s", xid, _SETTLE_SECONDS)
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def init_db(self) -> None:
        """Bring the schema to the newest revision (runs the Alembic migrations)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(schema_version.upgrade)

    async def drop_db(self) -> None:
        """Drop every table of the model, the migrations' function and Alembic's version
        table. Destroys data."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.execute(text(f"DROP FUNCTION IF EXISTS {STORED_CREDENTIALS}"))
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    async def schema_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    async def check_health(self) -> bool:
        """True when a round trip to the server succeeds (``SELECT 1``)."""
        try:
            async with self.engine.connect() as conn:
                return bool((await conn.scalar(text("SELECT 1"))) == 1)
        except Exception as err:
            log.warning("database health check failed: %s", type(err).__name__)
            return False

    def pool_status(self) -> dict[str, int]:
        """Pool figures for diagnostics: connections checked out, idle, and overflow."""
        pool: Any = self.engine.pool
        if isinstance(pool, NullPool):
            return {"size": 0, "checked_out": 0, "idle": 0, "overflow": 0}
        return {
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(pool.overflow(), 0),
        }

    async def close(self) -> None:
        await self.engine.dispose()


def _current_revision(conn: Connection) -> str | None:
    return schema_version.current_revision(conn)


# --- module-level API of the architecture notes ----------------------------------------

_database: Database | None = None


def get_database() -> Database:
    """The process-wide ``Database`` (created on first use from the environment)."""
    global _database
    if _database is None:
        _database = Database()
    return _database


async def close_database() -> None:
    global _database
    if _database is not None:
        await _database.close()
        _database = None


async def init_database(drop_existing: bool = False) -> Database:
    db = get_database()
    if drop_existing:
        await db.drop_db()
    await db.init_db()
    return db


async def get_db() -> AsyncIterator[UnitOfWork]:
    """FastAPI-style dependency: yields a session that commits after the request."""
    async with get_database().session() as session:
        yield session


async def check_database_health() -> bool:
    return await get_database().check_health()
