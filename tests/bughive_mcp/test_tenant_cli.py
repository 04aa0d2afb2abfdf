"""The operator's side of multi-tenant mode: ``bughive-mcp grant-runtime-role`` (run as the
owner) gives a role exactly what the server needs, and ``bughive-mcp doctor`` says whether the
server's role is bound by the tenant policies."""

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.connection.tenancy import RUNTIME_PRIVILEGES, TENANT_TABLES, quote_identifier
from db.repositories import CrawlSessionRepository
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.conftest import PostgresServer, asyncpg_dsn, make_config
from tests.tenants import ACME, GLOBEX, runtime_role


def run(url: URL, workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER_COMMAND, *args],
        env=child_env(url, **env),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def execute(url: URL, *statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def privileges(url: URL, role: str) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = $1",
            role,
        )
        return {(r["table_name"], r["privilege_type"]) for r in rows}
    finally:
        await conn.close()


@pytest.fixture
def bare_role(postgres_server: PostgresServer, database_url: URL) -> Iterator[str]:
    """A login role with no grants yet (what an operator creates first)."""
    role = f"bughive_bare_{secrets.token_hex(4)}"
    who = quote_identifier(role)
    asyncio.run(execute(postgres_server.admin_url, f"CREATE ROLE {who} LOGIN NOBYPASSRLS"))
    try:
        yield role
    finally:
        asyncio.run(execute(database_url, f"DROP OWNED BY {who}"))
        asyncio.run(execute(postgres_server.admin_url, f"DROP ROLE {who}"))


def test_grant_runtime_role_grants_exactly_what_the_server_needs(
    database_url: URL, bare_role: str, tmp_path: Path
) -> None:
    finished = run(database_url, tmp_path, "grant-runtime-role", bare_role)

    assert finished.returncode == 0, finished.stderr
    granted = asyncio.run(privileges(database_url, bare_role))
    expected = {(t, p) for t in TENANT_TABLES for p in RUNTIME_PRIVILEGES.split(", ")}
    assert granted == expected | {("alembic_version", "SELECT")}


@pytest.fixture(scope="module")
def runtime_url(postgres_server: PostgresServer, database_url: URL) -> Iterator[URL]:
    with runtime_role(postgres_server, database_url) as url:
        yield url


def test_doctor_in_multi_tenant_mode_reports_the_runtime_role_as_enforcing(
    runtime_url: URL, tmp_path: Path
) -> None:
    finished = run(runtime_url, tmp_path, "doctor", "--json", BUGHIVE_TENANT=ACME)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(finished.stdout)
    assert (report["healthy"], report["row_security"]) == (True, "enforced")


def test_doctor_in_multi_tenant_mode_flags_a_role_that_bypasses_the_policies(
    database_url: URL, tmp_path: Path
) -> None:
    finished = run(database_url, tmp_path, "doctor", "--json", BUGHIVE_TENANT=ACME)

    assert finished.returncode == 1
    report = json.loads(finished.stdout)
    assert (report["healthy"], report["row_security"]) == (False, "not enforced")
    assert "multi-tenant mode: role" in report["problem"]


async def session_of(url: URL, tenant: str) -> str:
    db = Database(make_config(), url=url)
    try:
        async with db.session(tenant=tenant) as s:
            created = await CrawlSessionRepository(s).create_session(f"https://{tenant}.example")
        return str(created.id)
    finally:
        await db.close()


@pytest.mark.usefixtures("empty_tables")
async def test_report_reads_as_bughive_tenant(runtime_url: URL, tmp_path: Path) -> None:
    ours, theirs = [await session_of(runtime_url, tenant) for tenant in (ACME, GLOBEX)]

    mine = run(runtime_url, tmp_path, "report", ours, BUGHIVE_TENANT=ACME)
    foreign = run(runtime_url, tmp_path, "report", theirs, BUGHIVE_TENANT=ACME)

    assert mine.returncode == 0, mine.stderr
    assert "acme.example" in mine.stdout
    assert foreign.returncode == 1
    assert f"crawl session {theirs} does not exist" in foreign.stderr
    assert "globex" not in foreign.stdout + foreign.stderr


def test_serve_in_multi_tenant_mode_as_the_owner_exits_saying_why(
    database_url: URL, tmp_path: Path
) -> None:
    finished = run(database_url, tmp_path, "serve", BUGHIVE_TENANT=ACME)

    assert finished.returncode != 0
    assert "multi-tenant mode needs a database role bound by row-level security" in (
        finished.stderr
    )
    assert finished.stdout == ""
