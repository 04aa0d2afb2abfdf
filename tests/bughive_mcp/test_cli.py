"""The operator's commands: ``bughive-mcp doctor`` and ``bughive-mcp migrate``."""

import asyncio
import json
import subprocess
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from db import schema_version
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.conftest import PostgresServer, asyncpg_dsn

PASSWORD = "doctor-must-not-print-this"


def run(database_url: URL, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER_COMMAND, *args],
        env=child_env(database_url),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def with_password(url: URL) -> URL:
    """The URL carrying a password (the test server trusts local connections and ignores one
    it did not ask for; a server that needs one already has it in the URL)."""
    return url if url.password else url.set(password=PASSWORD)


def test_doctor_reports_a_healthy_database_as_json_with_the_password_masked(
    database_url: URL, tmp_path: Path
) -> None:
    url = with_password(database_url)
    secret = str(url.password)

    finished = run(url, tmp_path, "doctor", "--json")

    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["healthy"] is True
    assert report["reachable"] is True
    assert report["schema_revision"] == schema_version.head_revision()
    assert report["expected_schema_revision"] == schema_version.head_revision()
    assert ":***@" in report["database_url"]
    assert secret not in finished.stdout
    assert secret not in finished.stderr


def test_doctor_exits_non_zero_on_a_database_behind_the_newest_schema(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    empty = postgres_server.create_database(prefix="bughive_doctor")

    finished = run(empty, tmp_path, "doctor", "--json")

    assert finished.returncode == 1
    report = json.loads(finished.stdout)
    assert (report["healthy"], report["schema_revision"]) == (False, None)
    assert "bughive-mcp migrate" in report["problem"]


def test_migrate_brings_an_empty_database_to_the_newest_revision(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    empty = postgres_server.create_database(prefix="bughive_migrate")

    finished = run(empty, tmp_path, "migrate")

    assert finished.returncode == 0, finished.stderr
    assert asyncio.run(alembic_revision(empty)) == schema_version.head_revision()
    assert f"schema at revision {schema_version.head_revision()}" in finished.stderr


def test_migrate_of_an_up_to_date_database_exits_0(database_url: URL, tmp_path: Path) -> None:
    finished = run(database_url, tmp_path, "migrate")

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == ""


async def alembic_revision(url: URL) -> str | None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        revision: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
        return revision
    finally:
        await conn.close()
