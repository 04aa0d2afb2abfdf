"""Multi-tenant mode in the database: the ``tenant_isolation`` policies (revision 0004) keep
tenants apart for the runtime role, whatever SQL it runs; a unit of work bound to no tenant sees
and writes nothing; the binding never outlives its transaction on a pooled connection."""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.connection.database import Database
from db.connection.tenancy import POLICY_NAME, RUNTIME_PRIVILEGES, TENANT_TABLES, row_security
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from tests.conftest import PostgresServer, make_config
from tests.tenants import ACME, GLOBEX, runtime_role

INSUFFICIENT_PRIVILEGE = "42501"
BLEED_TRANSACTIONS = 1000


@dataclass(frozen=True)
class Seeded:
    session_id: uuid.UUID
    page_id: uuid.UUID
    bug_id: uuid.UUID


@pytest.fixture(scope="module")
def runtime_url(postgres_server: PostgresServer, database_url: URL) -> Iterator[URL]:
    with runtime_role(postgres_server, database_url) as url:
        yield url


@pytest.fixture
async def runtime(runtime_url: URL, empty_tables: None) -> AsyncIterator[Database]:
    """The database as the multi-tenant server reaches it: as the runtime role."""
    database = Database(make_config(), url=runtime_url)
    try:
        yield database
    finally:
        await database.close()


async def seed(db: Database, tenant: str) -> Seeded:
    """A running session with a page (and a child page) and a bug, written as ``tenant``."""
    async with db.session(tenant=tenant) as s:
        sessions, pages = CrawlSessionRepository(s), PageRepository(s)
        session = await sessions.create_session(f"https://{tenant}.example")
        await sessions.start_session(session.id)
        home = await pages.create_page(session.id, f"https://{tenant}.example/")
        await pages.create_page(session.id, f"https://{tenant}.example/about", 1, home.id)
        bug = await BugRepository(s).create_bug(
            session.id, home.id, "data", "high", "Checkout fails", "500 on submit"
        )
    return Seeded(session.id, home.id, bug.id)


@pytest.fixture
async def tenants(runtime: Database) -> dict[str, Seeded]:
    return {tenant: await seed(runtime, tenant) for tenant in (ACME, GLOBEX)}


async def scalar(db: Database, sql: str, tenant: str | None = None, **params: object) -> object:
    async with db.session(tenant=tenant) as s:
        return (await s.execute(text(sql), params)).scalar()


async def refused(db: Database, sql: str, tenant: str | None, **params: object) -> str:
    """Runs a write that must fail; returns its SQLSTATE."""
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with db.session(tenant=tenant) as s:
            await s.execute(text(sql), params)
    return str(caught.value.sqlstate)


# --- the catalog -----------------------------------------------------------------------


async def test_every_table_with_a_tenant_column_has_row_level_security_and_the_policy(
    raw: asyncpg.Connection,
) -> None:
    rows = await raw.fetch(
        """
        SELECT c.relname, c.relrowsecurity, p.cmd, p.qual, p.with_check
        FROM information_schema.columns col
        JOIN pg_class c ON c.relname = col.table_name
             AND c.relnamespace = col.table_schema::regnamespace
        LEFT JOIN pg_policies p ON p.tablename = c.relname AND p.policyname = $1
        WHERE col.column_name = 'tenant' AND col.table_schema = current_schema()
        """,
        POLICY_NAME,
    )

    assert {r["relname"] for r in rows} == set(TENANT_TABLES)
    for row in rows:
        assert row["relrowsecurity"], row["relname"]
        assert row["cmd"] == "ALL", row["relname"]
        assert "bughive.tenant" in row["qual"], row["relname"]
        assert "bughive.tenant" in row["with_check"], row["relname"]


async def test_the_runtime_role_is_not_superuser_not_bypassrls_and_owns_no_table(
    runtime: Database, raw: asyncpg.Connection
) -> None:
    role = runtime.url.username
    facts = await raw.fetchrow(
        """
        SELECT rolsuper, rolbypassrls,
               (SELECT count(*) FROM pg_tables
                WHERE schemaname = current_schema() AND tableowner = $1) AS owned
        FROM pg_roles WHERE rolname = $1
        """,
        role,
    )

    assert facts is not None
    assert (facts["rolsuper"], facts["rolbypassrls"], facts["owned"]) == (False, False, 0)
    assert (await row_security(runtime.engine)).enforced


async def test_the_runtime_role_may_select_insert_and_update_but_not_delete_or_truncate(
    runtime: Database, raw: asyncpg.Connection
) -> None:
    granted = set(RUNTIME_PRIVILEGES.split(", "))
    for table in TENANT_TABLES:
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            has = await raw.fetchval(
                "SELECT has_table_privilege($1, $2, $3)", runtime.url.username, table, privilege
            )
            assert has == (privilege in granted), (table, privilege)


async def test_the_owner_is_reported_as_not_bound_by_the_policies(database_url: URL) -> None:
    owner = create_async_engine(database_url, poolclass=NullPool)
    try:
        security = await row_security(owner)
    finally:
        await owner.dispose()

    assert not security.enforced
    assert any("superuser" in p or "owns" in p for p in security.problems)


async def test_whoever_logs_in_as_the_runtime_role_may_bind_any_tenant(
    runtime: Database, tenants: dict[str, Seeded]
) -> None:
    """The known limit the README states where it sets the role up: the policies trust the
    setting, and the role may set it to any tenant. Its password is every tenant's key."""
    async with runtime.engine.begin() as conn:  # LOCAL: the pooled connection keeps nothing
        await conn.execute(text("SET LOCAL bughive.tenant = 'globex'"))
        seen = await conn.scalar(text("SELECT id FROM crawl_sessions"))

    assert seen == tenants[GLOBEX].session_id


# --- reads, writes and counts across tenants --------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_a_tenant_reads_and_counts_only_its_own_rows(
    table: str, runtime: Database, tenants: dict[str, Seeded], raw: asyncpg.Connection
) -> None:
    own = await raw.fetchval(f"SELECT count(*) FROM {table} WHERE tenant = $1", ACME)

    visible = await scalar(runtime, f"SELECT count(*) FROM {table}", ACME)
    foreign = await scalar(
        runtime, f"SELECT count(*) FROM {table} WHERE tenant = :t", ACME, t=GLOBEX
    )

    assert own > 0
    assert (visible, foreign) == (own, 0)


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_a_tenant_updates_none_of_another_tenants_rows(
    table: str, runtime: Database, tenants: dict[str, Seeded]
) -> None:
    async with runtime.session(tenant=ACME) as s:
        result = await s.execute(
            text(f"UPDATE {table} SET tenant = tenant WHERE tenant = :t"), {"t": GLOBEX}
        )

    assert result.rowcount == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_a_tenant_cannot_hand_its_rows_to_another_tenant(
    table: str, runtime: Database, tenants: dict[str, Seeded]
) -> None:
    state = await refused(runtime, f"UPDATE {table} SET tenant = :t", ACME, t=GLOBEX)

    assert state == INSUFFICIENT_PRIVILEGE


async def test_a_tenant_cannot_insert_a_row_for_another_tenant(runtime: Database) -> None:
    state = await refused(
        runtime,
        "INSERT INTO crawl_sessions (base_url, tenant) VALUES ('https://x.example/', :t)",
        ACME,
        t=GLOBEX,
    )

    assert state == INSUFFICIENT_PRIVILEGE


FOREIGN_PARENT_INSERTS = {
    "page in another tenant's session": (
        "INSERT INTO pages (session_id, url) VALUES (:session_id, 'https://x.example/')"
    ),
    "bug on another tenant's page": (
        "INSERT INTO bugs (session_id, page_id, category, priority, title, description,"
        " confidence) VALUES (:own_session_id, :page_id, 'data', 'low', 't', 'd', 0.5)"
    ),
    "occurrence of another tenant's bug": (
        "INSERT INTO bug_occurrences (bug_id, session_id, page_id)"
        " VALUES (:bug_id, :own_session_id, :own_page_id)"
    ),
}


@pytest.mark.parametrize("sql", FOREIGN_PARENT_INSERTS.values(), ids=FOREIGN_PARENT_INSERTS)
async def test_a_tenant_cannot_point_a_row_at_another_tenants_parent(
    sql: str, runtime: Database, tenants: dict[str, Seeded]
) -> None:
    """Foreign-key checks bypass row-level security; the policies' WITH CHECK does not."""
    mine, theirs = tenants[ACME], tenants[GLOBEX]
    params = {
        "session_id": theirs.session_id,
        "page_id": theirs.page_id,
        "bug_id": theirs.bug_id,
        "own_session_id": mine.session_id,
        "own_page_id": mine.page_id,
    }
    used = {k: v for k, v in params.items() if f":{k}" in sql}

    state = await refused(runtime, sql, ACME, **used)

    assert state == INSUFFICIENT_PRIVILEGE


# --- fail-closed --------------------------------------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_a_unit_of_work_bound_to_no_tenant_sees_no_rows(
    table: str, runtime: Database, tenants: dict[str, Seeded]
) -> None:
    assert await scalar(runtime, f"SELECT count(*) FROM {table}") == 0


async def test_a_unit_of_work_bound_to_no_tenant_cannot_write(
    runtime: Database, tenants: dict[str, Seeded]
) -> None:
    state = await refused(
        runtime, "INSERT INTO crawl_sessions (base_url) VALUES ('https://x.example/')", None
    )

    assert state == INSUFFICIENT_PRIVILEGE


@pytest.mark.parametrize("tenant", ["", "a'; DROP TABLE pages; --", "x" * 101, "-lead"])
async def test_a_malformed_tenant_name_is_refused_before_any_statement(
    tenant: str, runtime: Database
) -> None:
    with pytest.raises(ValueError, match="tenant name"):
        async with runtime.session(tenant=tenant):
            pass


# --- pool bleed ---------------------------------------------------------------------------


class Boom(Exception):
    pass


async def test_the_tenant_binding_never_outlives_its_transaction_on_a_pooled_connection(
    runtime_url: URL, tenants: dict[str, Seeded]
) -> None:
    """One pooled connection, alternating tenants (every tenth transaction rolled back): each
    transaction sees exactly its tenant, and between them the connection is bound to none."""
    pooled = Database(make_config(pool_size=1, max_overflow=0), url=runtime_url)
    backends: set[int] = set()
    seen: list[tuple[str, str, list[str]]] = []
    try:
        for n in range(BLEED_TRANSACTIONS):
            tenant = (ACME, GLOBEX)[n % 2]
            try:
                async with pooled.session(tenant=tenant) as s:
                    row = (
                        await s.execute(
                            text(
                                "SELECT pg_backend_pid(), current_setting('bughive.tenant', true),"
                                " array(SELECT DISTINCT tenant FROM crawl_sessions)"
                            )
                        )
                    ).one()
                    backends.add(row[0])
                    seen.append((tenant, row[1], list(row[2])))
                    if n % 10 == 9:
                        raise Boom()
            except Boom:
                pass
            async with pooled.session() as s:
                left = (
                    await s.execute(
                        text(
                            "SELECT nullif(current_setting('bughive.tenant', true), ''),"
                            " (SELECT count(*) FROM crawl_sessions)"
                        )
                    )
                ).one()
            assert tuple(left) == (None, 0), (n, tenant, left)
    finally:
        await pooled.close()

    assert len(backends) == 1
    assert all(setting == tenant and visible == [tenant] for tenant, setting, visible in seen)
    assert len(seen) == BLEED_TRANSACTIONS


async def test_the_start_check_sees_every_tenants_stored_credentials(
    runtime: Database, runtime_url: URL
) -> None:
    """The runtime role sees no rows outside a tenant, yet the start-up check must see every
    tenant's encrypted credentials: without a key the server refuses to start, with the
    right key it counts them (migration 0006's ``SECURITY DEFINER`` function)."""
    from db.repositories.credentials import check_stored_credentials
    from db.rules.secrets import CredentialsUnavailable, cipher_of
    from db.schemas import CrawlConfig, SiteCredentials

    login = SiteCredentials(username="qa", password="s3cret-for-the-crawler")
    for tenant in (ACME, GLOBEX):
        async with runtime.session(tenant=tenant) as s:
            await CrawlSessionRepository(s).create_session(
                f"https://{tenant}.example", CrawlConfig(credentials=login)
            )
    async with runtime.session() as s:  # no tenant: the policies hide every row
        assert await s.scalar(text("SELECT count(*) FROM crawl_sessions")) == 0
        assert await check_stored_credentials(s, cipher_of(s)) == 2

    keyless = Database(make_config(encryption_key=None), url=runtime_url)
    try:
        async with keyless.session() as s:
            with pytest.raises(CredentialsUnavailable, match="2 crawl session"):
                await check_stored_credentials(s, cipher_of(s))
    finally:
        await keyless.close()
