"""The operator's commands: ``bughive-mcp doctor`` and ``bughive-mcp migrate``."""

import asyncio
import json
import subprocess
from pathlib import Path

import anyio
import asyncpg
from sqlalchemy.engine import URL

from db.connection import schema_version
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


MIGRATING_TOGETHER = 3


async def waiting_backends(conn: asyncpg.Connection) -> int:
    """Connections of the server (not this one) waiting for a lock in ``conn``'s database."""
    waiting: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'bughive-mcp' AND wait_event_type = 'Lock'"
    )
    return waiting


async def migrate_together(url: URL, workdir: Path) -> list[tuple[int, str]]:
    """Starts ``migrate`` processes and lines them up: a transaction here creates (without
    committing) the table Alembic creates first, so each of them stops there, or at the
    migration lock; once all wait, it rolls back and they are let go at the same moment."""
    blocker, watcher = [await asyncpg.connect(asyncpg_dsn(url)) for _ in range(2)]
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("CREATE TABLE alembic_version (version_num varchar(32))")
        processes = [
            await asyncio.create_subprocess_exec(
                *SERVER_COMMAND,
                "migrate",
                env=child_env(url),
                cwd=workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(MIGRATING_TOGETHER)
        ]
        with anyio.fail_after(60):
            # (Watched from outside the transaction: inside, pg_stat_activity is a snapshot.)
            while await waiting_backends(watcher) < MIGRATING_TOGETHER:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # a condition in another process: polled, bounded
            await transaction.rollback()
            outputs = [await process.communicate() for process in processes]
    finally:
        await blocker.close()
        await watcher.close()
    return [
        (process.returncode or 0, stderr.decode())
        for process, (_, stderr) in zip(processes, outputs, strict=True)
    ]


async def test_migrations_started_together_on_an_empty_database_all_succeed(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Servers (or ``migrate`` commands) started at the same moment on an empty database take
    turns under the migration lock, and the later ones find the schema at head."""
    empty = await postgres_server.create_database_async("bughive_race")

    finished = await migrate_together(empty, tmp_path)

    assert [code for code, _ in finished] == [0] * MIGRATING_TOGETHER, finished
    assert await alembic_revision(empty) == schema_version.head_revision()


def test_doctor_shows_the_embedded_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "pgdata"

    finished = subprocess.run(
        [*SERVER_COMMAND, "doctor", "--json"],
        env=child_env(None, BUGHIVE_DATA_DIR=str(data_dir)),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    report = json.loads(finished.stdout)
    assert report["database_url"] == "<embedded PostgreSQL>"
    assert report["embedded_data_dir"] == str(data_dir.resolve()), report
