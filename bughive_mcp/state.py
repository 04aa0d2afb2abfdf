"""What lives for the life of the server process: the ``Database`` (and the read replica's, if
any). Nothing else is kept between tool calls, so any replica of the server can answer any call."""

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer

from bughive_mcp.readiness import Readiness
from bughive_mcp.settings import ServerSettings
from bughive_mcp.tenancy import check_multi_tenant_database, request_tenant
from db.connection.config import DatabaseConfig
from db.connection.database import Database
from db.connection.startup import wait_until_reachable
from db.connection.unit_of_work import UnitOfWork
from db.repositories.credentials import check_stored_credentials
from db.rules.secrets import cipher_of

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class AppState:
    db: Database
    settings: ServerSettings
    read_db: Database | None = None  # the read replica (DATABASE_READ_URL), if any


AppContext = Context[AppState, Any]


def make_lifespan(
    db_config: DatabaseConfig, settings: ServerSettings, readiness: Readiness | None = None
) -> Callable[[MCPServer[AppState]], AbstractAsyncContextManager[AppState]]:
    @asynccontextmanager
    async def lifespan(server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        # Read-only mode is enforced twice: write tools are not exposed, and every database
        # transaction is READ ONLY, so not even a bug in a read tool can write.
        config = (
            db_config.model_copy(update={"read_only": True}) if settings.read_only else db_config
        )
        # Starting an embedded PostgreSQL blocks for about a second: keep it off the loop.
        db = await anyio.to_thread.run_sync(Database, config)
        read_db = read_replica(config)
        try:
            # A database down at start (a reboot, a container started first) is waited for.
            await wait_until_reachable(
                db, on_retry=readiness.waiting if readiness is not None else None
            )
            if settings.multi_tenant:
                # The runtime role may not change the schema, and must be bound by the policies.
                await check_multi_tenant_database(db)
            elif settings.auto_migrate and not settings.read_only:
                await db.init_db()
            # Fail at start, not at the first crawl, when stored credentials cannot be opened.
            async with db.session() as session:
                await check_stored_credentials(session, cipher_of(session))
            log.info("database ready at %r (schema %s)", db, await db.schema_revision())
            freeze_startup_objects()
            if read_db is not None:
                log.info("read-only tools read from the replica at %r", read_db)
            yield AppState(db=db, settings=settings, read_db=read_db)
        finally:
            if read_db is not None:
                await read_db.close()
            await db.close()

    return lifespan


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Move every object alive at start-up (modules, the model's metadata, pydantic schemas,
    the pool) out of reach of Python's full garbage collections, once per process.

    They live as long as the server, yet every full collection walked all of them again. A
    big call allocates enough to set off one or two full collections: for a 10,000-page
    ``bulk_create_pages``, 100-190 ms of a ~600 ms call (599 → 484 ms with this, measured
    in-process). The usual remedy for long-running Python servers (``gc.freeze``); the cost
    is that cyclic garbage alive at this moment is never collected — there is none worth
    speaking of at start-up."""
    global _startup_frozen
    if not _startup_frozen:
        gc.collect()
        gc.freeze()
        _startup_frozen = True


def read_replica(config: DatabaseConfig) -> Database | None:
    """The read replica's ``Database``, or None without ``DATABASE_READ_URL``. Its transactions
    are READ ONLY too: a URL that points at the primary by mistake still cannot be written to."""
    if config.read_url is None:
        return None
    return Database(config.model_copy(update={"read_only": True}), url=config.read_url)


def reads_only(ctx: AppContext) -> bool:
    """True for a call that cannot write: a tool annotated read-only, or a resource read."""
    from bughive_mcp.tools.registry import catalog  # the tools import this module

    request = ctx.request_context
    if request.method == "resources/read":
        return True
    name = (request.params or {}).get("name") if request.method == "tools/call" else None
    return isinstance(name, str) and catalog.is_read_only(name)


async def in_unit_of_work(ctx: AppContext, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """``await work(uow)`` in one unit of work per tool call: committed when it returns,
    rolled back if it raises, and run again when PostgreSQL rolled it back for a conflict
    with a concurrent call (:meth:`Database.run`), so an agent sees "conflict" only when
    the retries are spent.

    A call that cannot write (``reads_only``) runs on the read replica when one is configured,
    and may see it lag (docs/scaling.md); every other call runs on the primary — reads included,
    so a tool that writes always reads its own writes. How the call's statements run (in
    autocommit, in a transaction) the repository method it calls decides."""
    state: AppState = ctx.request_context.lifespan_context
    read_only = reads_only(ctx)
    db = state.read_db if state.read_db is not None and read_only else state.db
    settings = state.settings
    return await db.run(work, tenant=request_tenant(settings.tenant, settings.multi_tenant))


def server_settings(ctx: AppContext) -> ServerSettings:
    state: AppState = ctx.request_context.lifespan_context
    return state.settings


def database(ctx: AppContext) -> Database:
    state: AppState = ctx.request_context.lifespan_context
    return state.db
