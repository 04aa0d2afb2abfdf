"""The data layer through a real PgBouncer in transaction pooling mode (``BUGHIVE_DB_PGBOUNCER``).

PgBouncer here has fewer server connections than the tests have clients, so consecutive
transactions of one client run on different server connections, and one server connection
serves many clients: whatever the engine left on a server connection would show up elsewhere.
"""

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.connection.pgbouncer import per_transaction_statement
from db.errors import DatabaseUnavailable
from tests.conftest import asyncpg_dsn, make_config
from tests.db import test_frontier
from tests.infrastructure import pgbouncer, require_pgbouncer


@pytest.fixture(scope="module")
def bouncer_url(database_url: URL) -> Iterator[URL]:
    """The test database, through a PgBouncer (transaction pooling, 4 server connections)."""
    require_pgbouncer()
    with pgbouncer(database_url, pool_size=4) as url:
        yield url


@pytest.fixture(scope="module")
def single_connection_bouncer(database_url: URL) -> Iterator[URL]:
    """Through a PgBouncer with one server connection: every client's transactions share it."""
    require_pgbouncer()
    with pgbouncer(database_url, pool_size=1) as url:
        yield url


@pytest.fixture
async def bounced_db(bouncer_url: URL, empty_tables: None) -> AsyncIterator[Database]:
    database = Database(make_config(pgbouncer=True), url=bouncer_url)
    try:
        yield database
    finally:
        await database.close()


async def test_without_the_setting_pgbouncer_refuses_the_connection(bouncer_url: URL) -> None:
    """statement_timeout as a startup parameter: "unsupported startup parameter"."""
    database = Database(make_config(), url=bouncer_url)
    try:
        with pytest.raises((DatabaseUnavailable, asyncpg.PostgresError)) as refused:
            async with database.session() as s:
                await s.execute(text("SELECT 1"))
    finally:
        await database.close()
    causes = []
    error: BaseException | None = refused.value
    while error is not None:
        causes.append(str(error))
        error = error.__cause__
    assert any("unsupported startup parameter: statement_timeout" in c for c in causes)


async def test_statement_timeout_holds_in_every_transaction_and_ends_with_it(
    single_connection_bouncer: URL,
) -> None:
    database = Database(
        make_config(pgbouncer=True, statement_timeout_ms=1234), url=single_connection_bouncer
    )
    plain = await asyncpg.connect(asyncpg_dsn(single_connection_bouncer), statement_cache_size=0)
    try:
        for _ in range(3):
            async with database.session() as s:
                assert await s.scalar(text("SHOW statement_timeout")) == "1234ms"
            # the same (only) server connection, now serving another client: nothing stuck
            assert await plain.fetchval("SHOW statement_timeout") == "0"
    finally:
        await plain.close()
        await database.close()


async def test_read_only_mode_holds_in_every_transaction_through_pgbouncer(
    bouncer_url: URL, empty_tables: None
) -> None:
    database = Database(make_config(pgbouncer=True, read_only=True), url=bouncer_url)
    try:
        for _ in range(2):
            with pytest.raises(asyncpg.PostgresError, match="read-only transaction"):
                async with database.session() as s:
                    await s.execute(text("CREATE TEMPORARY TABLE scratch (n int)"))
    finally:
        await database.close()


@pytest.mark.parametrize(("pgbouncer_mode", "left_behind"), [(True, False), (False, True)])
async def test_no_prepared_statement_outlives_its_statement_in_pgbouncer_mode(
    database_url: URL, empty_tables: None, pgbouncer_mode: bool, left_behind: bool
) -> None:
    """Straight to PostgreSQL (not through PgBouncer), where ``pg_prepared_statements`` shows
    what a connection keeps: in PgBouncer mode nothing; by default, asyncpg's named statements
    (which on a shared server connection would clash with another client's)."""
    database = Database(make_config(pgbouncer=pgbouncer_mode), url=database_url)
    try:
        async with database.session() as s:
            for n in range(3):
                await s.execute(text("SELECT count(*) FROM pages WHERE depth > :n"), {"n": n})
            kept = await s.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
    finally:
        await database.close()
    assert (kept > 0) is left_behind


async def test_eight_concurrent_workers_claim_every_page_exactly_once_through_pgbouncer(
    bounced_db: Database, raw: asyncpg.Connection
) -> None:
    """The frontier's concurrency test, unchanged, with every worker going through PgBouncer
    (eight workers, four server connections)."""
    await test_frontier.test_eight_concurrent_workers_claim_every_page_exactly_once(bounced_db, raw)


@pytest.mark.parametrize(
    ("pgbouncer_mode", "clashes"), [(True, False), (False, True)], ids=["pgbouncer", "default"]
)
async def test_a_statement_repeated_on_another_server_connection_clashes_only_without_pgbouncer_mode(
    bouncer_url: URL, pgbouncer_mode: bool, clashes: bool
) -> None:
    """One client repeats a statement in two transactions; between them another client holds
    the server connection of the first, so PgBouncer runs the second on another one. By
    default (statement_timeout off, so PgBouncer lets the connection in) the drivers keep the
    statement prepared — on the first server connection only: "prepared statement … does not
    exist". In PgBouncer mode nothing is kept prepared, and the second transaction succeeds."""
    client = Database(
        make_config(pgbouncer=pgbouncer_mode, statement_timeout_ms=0, pool_size=1),
        url=bouncer_url,
    )
    statement = text("SELECT pg_backend_pid() + 0 * :n")
    holder = await asyncpg.connect(asyncpg_dsn(bouncer_url), statement_cache_size=0)
    try:
        async with client.session() as s:
            first_server = await s.scalar(statement, {"n": 1})
        for _ in range(10):  # PgBouncer reuses the server connection freed last: at once, here
            hold = holder.transaction()
            await hold.start()
            if await holder.fetchval("SELECT pg_backend_pid()") == first_server:
                break
            await hold.rollback()
        else:
            pytest.fail("could not hold the first transaction's server connection")
        try:
            async with client.session() as s:
                second_server = await s.scalar(statement, {"n": 2})
            assert second_server != first_server
            clashed = False
        except asyncpg.PostgresError as err:
            assert "prepared statement" in str(err)
            clashed = True
        finally:
            await hold.rollback()
    finally:
        await holder.close()
        await client.close()
    assert clashed is clashes


def test_settings_become_one_per_transaction_statement_of_literals() -> None:
    settings = {
        "application_name": "bughive-mcp",
        "statement_timeout": "1500",
        "default_transaction_read_only": "on",
    }

    assert per_transaction_statement(settings) == (
        "SELECT set_config('statement_timeout', '1500', true),"
        " set_config('transaction_read_only', 'on', true)"
    )
    assert per_transaction_statement({"application_name": "x"}) is None
    assert per_transaction_statement({"search_path": "it's"}) == (
        "SELECT set_config('search_path', 'it''s', true)"
    )
