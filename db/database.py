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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from db import liveness, pgbouncer, schema_version
from db.config import DatabaseConfig
from db.driver import LEASE_KEY, PoolLease, run_to_completion
from db.errors import (
    CommitOutcomeUnknown,
    ConcurrentUpdate,
    DatabaseUnavailable,
    DomainError,
    ServerBusy,
    StatementTimeout,
)
from db.models import Base
from db.secrets import CIPHER_INFO_KEY, STORED_CREDENTIALS, CredentialCipher
from db.tenancy import bind_tenant

log = logging.getLogger(__name__)

APPLICATION_NAME = "bughive-mcp"
ENGINE_LOGGER = "sqlalchemy.engine.Engine"  # where SQLAlchemy logs the statements it runs

# Errors that mean "could not talk to the database", as opposed to "the database said no".
_UNAVAILABLE = (OSError, TimeoutError, ConnectionError, sa_exc.TimeoutError)
# SQLSTATEs of the same: connection exceptions (class 08), the server shutting down or starting
# up (57P01-57P03), too many connections (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
QUERY_CANCELED = "57014"
# PostgreSQL ended the transaction to resolve a conflict: deadlock_detected,
# serialization_failure. Retrying the same call is the documented remedy.
ROLLED_BACK_BY_CONFLICT = ("40P01", "40001")
IN_FAILED_TRANSACTION = "25P02"

# Read just before each commit: the transaction's id, or NULL when it wrote nothing.
_TRANSACTION_ID_SQL = "SELECT pg_current_xact_id_if_assigned()::text"
_TRANSACTION_ID = text(_TRANSACTION_ID_SQL)
_TRANSACTION_STATUS = text("SELECT pg_xact_status(CAST(CAST(:xid AS text) AS xid8))")
# Where a statement that read its own transaction's id leaves it (remember_transaction_id).
_TRANSACTION_ID_KEY = "bughive_transaction_id"
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


def _echo_statements() -> None:
    """``echo``: every statement at INFO on SQLAlchemy's engine logger, which the process's
    own log configuration (stderr, once) then writes. Not the engine's ``echo=True``: that
    adds a second handler writing each line again to stdout, the protocol's channel in stdio
    mode."""
    logging.getLogger(ENGINE_LOGGER).setLevel(logging.INFO)


def resolve_url(config: DatabaseConfig) -> URL:
    """The configured URL, or the embedded PostgreSQL's when none is configured (blocking)."""
    if config.url is not None:
        return config.url
    from db.embedded import start_embedded_server

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
        if self.config.echo:
            _echo_statements()
        engine_args: dict[str, Any] = {
            # Parameters carry secrets (the credentials' Fernet token, anything a caller
            # sent): never in a log line or an error's text, whatever the settings.
            "hide_parameters": True,
            # Replaced by db.liveness: the same protection without 3 round trips per call.
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
        if self.config.pgbouncer:
            pgbouncer.set_per_transaction(self.engine, server_settings)
        if self.config.pool_pre_ping:
            liveness.install(self.engine, self.config.pool_pre_ping_idle_seconds)
        keys = self.config.encryption_keys
        self.session_factory = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            # Repositories find the credential cipher here (db.secrets), not in arguments.
            info={CIPHER_INFO_KEY: CredentialCipher(keys) if keys else None},
        )

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def session(
        self,
        tenant: str | None = None,
        *,
        writes: bool = True,
        single_statement: bool = False,
        driver_only: bool = False,
    ) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block exits normally, rolls back on any exception.

        With ``tenant``, its first statement binds the transaction to that tenant (multi-tenant
        mode, see :mod:`db.tenancy`); the binding ends with the transaction.

        ``writes=False`` promises the block only reads: a lost commit answer then cannot hide a
        change, so the transaction id is not asked for (one round trip less per call). A
        statement that knows its transaction id may hand it over with
        :func:`remember_transaction_id`, which saves the same round trip for a write.

        ``driver_only=True`` promises the block sends its statements only through
        :func:`db.driver.driver_connection`, never through the ORM session: they then run on a
        connection leased from the pool past the session's machinery (:class:`PoolLease`), in
        one transaction as always. ``single_statement=True`` promises more: one statement,
        atomic on its own. It then runs in autocommit, without ``BEGIN`` and ``COMMIT`` (two
        round trips of three); its answer, if lost, cannot be settled: the statement may have
        run although the caller gets :class:`DatabaseUnavailable`. The tools that use it are a
        read and the frontier claim, for which that is the at-least-once contract anyway (an
        unanswered claim's lease runs out and its pages are offered again). Neither promise
        changes anything when the transaction must carry settings (a tenant binding; PgBouncer
        mode, whose settings are per transaction): the block then runs as any other.

        What the caller may rely on when it fails:

        - :class:`DatabaseUnavailable` (connection failed or lost before the commit),
          :class:`ServerBusy` (no free connection within ``pool_timeout``) and
          :class:`StatementTimeout`: the transaction did not happen, nothing was changed;
        - connection lost *during* the commit: the database is asked whether the transaction
          committed. Committed → the block's work stands and ``session()`` exits normally;
          aborted → :class:`DatabaseUnavailable`; the database cannot say (it is down) →
          :class:`CommitOutcomeUnknown`, whose message says the change may have been saved."""
        lost_commit: BaseException | None = None
        xid: str | None = None
        try:
            session = self.session_factory()
            lease: PoolLease | None = None
            try:
                if tenant is not None:
                    await bind_tenant(session, tenant)
                elif (single_statement or driver_only) and not self.config.pgbouncer:
                    lease = PoolLease(self.engine, transaction=not single_statement)
                    session.info[LEASE_KEY] = lease  # see db.driver
                yield session
                keeps_xid = writes and not self.config.read_only
                if lease is not None and lease.used:
                    if session.in_transaction():
                        raise RuntimeError(
                            "a driver-only unit of work also used the ORM session: its "
                            "statements ran outside the unit of work's transaction"
                        )
                    if lease.in_transaction:
                        xid = await _lease_transaction_id(session, lease) if keeps_xid else None
                        lost_commit = await _commit_lease(lease)
                else:
                    if keeps_xid:
                        xid = await _transaction_id(session)
                    lost_commit = await _commit(session)
            except BaseException as err:
                unavailable = isinstance(err, Exception) and _is_unavailable(err)
                if lease is not None:
                    if isinstance(err, Exception) and not unavailable:
                        await lease.release()  # rolls its transaction back
                    else:
                        await lease.discard()
                if unavailable:
                    # The connection may be broken in a way SQLAlchemy never saw (a
                    # statement of the driver path, db.driver, failed): drop it, do not
                    # pool it for the next caller.
                    await session.invalidate()
                else:
                    await session.rollback()
                raise
            else:
                if lease is not None:
                    await (lease.release() if lost_commit is None else lease.discard())
            finally:
                await _close(session)
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


def remember_transaction_id(session: AsyncSession, xid: object) -> None:
    """Record the id of ``session``'s current transaction, read by one of its own statements
    (``pg_current_xact_id()``), so the unit of work need not ask for it before the commit."""
    session.info[_TRANSACTION_ID_KEY] = str(xid)


async def _transaction_id(session: AsyncSession) -> str | None:
    """The id of the session's transaction, or None when it has written nothing."""
    if not session.in_transaction():
        return None
    known = session.info.get(_TRANSACTION_ID_KEY)
    if known is not None:
        return str(known)
    try:
        xid = await session.scalar(_TRANSACTION_ID)
    except sa_exc.DBAPIError as err:
        if _sqlstate(err) != IN_FAILED_TRANSACTION:
            raise
        return None  # the transaction already failed (the block caught the error): it rolls back
    return None if xid is None else str(xid)


async def _lease_transaction_id(session: AsyncSession, lease: PoolLease) -> str | None:
    """The id of the lease's transaction, or None when it has written nothing."""
    known = session.info.get(_TRANSACTION_ID_KEY)
    if known is not None:
        return str(known)
    xid = await (await lease.connection()).fetchval(_TRANSACTION_ID_SQL)
    return None if xid is None else str(xid)


async def _commit_lease(lease: PoolLease) -> BaseException | None:
    """Commit the lease's transaction; like :func:`_commit`, returns the error when the
    connection was lost during the commit."""
    try:
        await lease.commit()
    except Exception as err:
        if not _is_unavailable(err):
            raise
        return err
    return None


async def _commit(session: AsyncSession) -> BaseException | None:
    """Commit; returns the error instead of raising it when the connection was lost during
    the commit (the outcome is then unknown, not failed). A session that began nothing and
    holds no pending change has nothing to commit (its block only used the driver path)."""
    if not (session.in_transaction() or session.new or session.dirty or session.deleted):
        return None
    try:
        await session.commit()
    except Exception as err:
        if not _is_unavailable(err) or isinstance(err, sa_exc.TimeoutError):
            raise
        await session.rollback()
        return err
    return None


async def _close(session: AsyncSession) -> None:
    """End the session. Once its transaction is over (committed or rolled back: the usual
    case), closing only forgets its objects — no I/O, so none of the task ``close()`` would
    need to survive a cancellation."""
    if session.in_transaction():
        await run_to_completion(session.close())
    elif session.identity_map or session.new:  # (a driver-only unit of work has neither)
        session.expunge_all()


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


async def get_db() -> AsyncIterator[AsyncSession]:
    """FastAPI-style dependency: yields a session that commits after the request."""
    async with get_database().session() as session:
        yield session


async def check_database_health() -> bool:
    return await get_database().check_health()
