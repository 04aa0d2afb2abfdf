"""``DATABASE_READ_URL`` with a real streaming replica: read-only tools and resources read from
it, everything else from the primary — and what an agent sees while the replica lags.

The module runs its own PostgreSQL primary (so the replica copies one small database, not the
whole test cluster) and a hot standby made from it with ``pg_basebackup``. Two databases:
``lagging`` replicates asynchronously (``synchronous_commit = local``), as most replicas do;
``applied`` commits only once the standby has applied the commit (``remote_apply``), the
setting that gives read-your-writes across calls.

Replay is paused with ``pg_wal_replay_pause()`` to make the lag as long as a test needs; to wait
for the replica to catch up, a marker transaction commits with ``remote_apply`` — it returns
once the standby has applied everything before it. No sleeps.
"""

import inspect
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import asyncpg
import pytest
from mcp import Client
from mcp.types import TextResourceContents
from sqlalchemy import text
from sqlalchemy.engine import URL

from bughive_mcp.server import BugHiveServer, build_server
from bughive_mcp.settings import ServerSettings
from bughive_mcp.state import read_replica, reads_only
from bughive_mcp.tools import catalog
from db.connection.embedded import start_embedded_server, stop_embedded_server
from tests.bughive_mcp.every_tool import crawl_with_every_tool, every_tool
from tests.bughive_mcp.toolcalls import BASE_URL, call, call_ok, only_text
from tests.conftest import _migrate, asyncpg_dsn, make_config
from tests.infrastructure import streaming_replica

CATCH_UP_SECONDS = 30
TABLES = ("bugs", "pages", "crawl_sessions")


@dataclass(frozen=True)
class Replicated:
    """One database on the primary and the same database on the replica."""

    primary: URL
    replica: URL


@dataclass(frozen=True)
class Cluster:
    lagging: Replicated
    applied: Replicated


async def _prepare_primary(admin: URL) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        for name, commit in (("lagging", "local"), ("applied", "remote_apply")):
            await conn.execute(f"CREATE DATABASE {name}")
            await conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = {commit}")
    finally:
        await conn.close()
    for name in ("lagging", "applied"):
        await _migrate(admin.set(database=name))


async def _wait_for_the_standby(admin: URL) -> None:
    """From now on a commit that asks for it (remote_apply) waits for the standby; before it
    was connected, every commit would have waited forever."""
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    data_dir = Path(tempfile.mkdtemp(prefix="bh-primary-")) / "pgdata"
    admin = start_embedded_server(data_dir, database="postgres", cleanup="delete")
    try:
        anyio.run(_prepare_primary, admin)
        with streaming_replica(admin) as replica:
            anyio.run(_wait_for_the_standby, admin)
            yield Cluster(
                *(
                    Replicated(admin.set(database=name), replica.set(database=name))
                    for name in ("lagging", "applied")
                )
            )
    finally:
        stop_embedded_server(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


async def caught_up(db: Replicated) -> None:
    """Returns once the replica has applied everything the primary committed before the call:
    a marker transaction commits with remote_apply (a standby that is paused holds it)."""
    conn = await asyncpg.connect(asyncpg_dsn(db.primary))
    try:
        with anyio.fail_after(CATCH_UP_SECONDS):
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = remote_apply")
                await conn.execute("SELECT pg_current_xact_id()")  # a commit record to wait for
    finally:
        await conn.close()


async def set_replay(db: Replicated, *, paused: bool) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db.replica))
    try:
        await conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
    finally:
        await conn.close()


def server_on(db: Replicated, **settings: Any) -> BugHiveServer:
    config = make_config(
        database_url=db.primary.render_as_string(hide_password=False),
        database_read_url=db.replica.render_as_string(hide_password=False),
    )
    return build_server(ServerSettings(_env_file=None, auto_migrate=False, **settings), config)


async def _cleanup(db: Replicated) -> None:
    await set_replay(db, paused=False)
    conn = await asyncpg.connect(asyncpg_dsn(db.primary))
    try:
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")
    finally:
        await conn.close()
    await caught_up(db)


@pytest.fixture
async def lagging(cluster: Cluster) -> AsyncIterator[Replicated]:
    """The asynchronous replica, caught up; emptied and replaying again after the test."""
    await caught_up(cluster.lagging)
    yield cluster.lagging
    await _cleanup(cluster.lagging)


@pytest.fixture
async def applied(cluster: Cluster) -> AsyncIterator[Replicated]:
    yield cluster.applied
    await _cleanup(cluster.applied)


async def new_crawl(client: Client, pages: int) -> str:
    """A running session with ``pages`` discovered pages; returns its id."""
    session = await call_ok(client, "create_session", base_url=BASE_URL)
    await call_ok(client, "start_session", session_id=session["id"])
    links = [{"url": f"{BASE_URL}/p/{i}", "depth": 1} for i in range(pages)]
    await call_ok(client, "bulk_create_pages", session_id=session["id"], pages=links)
    session_id: str = session["id"]
    return session_id


def id_arguments(tool: str, ids: dict[str, str]) -> dict[str, str]:
    """The ids among ``ids`` (session_id, page_id, bug_id) that ``tool`` takes."""
    spec = next(s for s in catalog.specs if s.name == tool)
    return {name: ids[name] for name in inspect.signature(spec.fn).parameters if name in ids}


def test_calls_that_cannot_write_are_exactly_the_read_only_tools_and_resource_reads() -> None:
    def request(method: str, **params: Any) -> Any:
        return SimpleNamespace(request_context=SimpleNamespace(method=method, params=params))

    for spec in catalog.specs:
        assert reads_only(request("tools/call", name=spec.name)) is spec.read_only, spec.name
    assert reads_only(request("resources/read", uri="bughive://schema"))
    assert not reads_only(request("tools/call", name="no_such_tool"))
    assert not reads_only(request("prompts/get", name="crawl_site"))


async def test_every_read_only_tool_and_resource_reads_the_replica_every_other_tool_the_primary(
    lagging: Replicated,
) -> None:
    """With replay paused, a session made now exists on the primary only. The write tools work
    on it — they read the primary; every read-only tool and resource says it does not exist —
    they read the replica. Once the replica catches up, they all find it."""
    await set_replay(lagging, paused=True)
    async with Client(server_on(lagging)) as client:
        session_id = await new_crawl(client, 2)
        claim = await call_ok(client, "claim_pages_to_crawl", session_id=session_id, limit=1)
        page = claim["items"][0]
        await call_ok(client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"])
        bug = await call_ok(
            client,
            "create_bug",
            session_id=session_id,
            page_id=page["id"],
            category="ui_ux",
            priority="high",
            title="Menu hides the cart",
            description="The menu overlaps the cart icon.",
        )
        ids = {"session_id": session_id, "page_id": page["id"], "bug_id": bug["id"]}
        reading = [
            spec.name
            for spec in catalog.specs
            if spec.read_only and id_arguments(spec.name, ids)  # those that look something up
        ]
        assert len(reading) >= 10

        for tool in reading:
            result = await call(client, tool, id_arguments(tool, ids))
            assert result.is_error and "does not exist" in only_text(result), (tool, result)
        listed = await call_ok(client, "list_sessions")
        assert session_id not in [s["id"] for s in listed["items"]]
        for resource in ("report", "graph"):
            with pytest.raises(Exception, match="does not exist"):
                await client.read_resource(f"bughive://sessions/{session_id}/{resource}")

        await set_replay(lagging, paused=False)
        await caught_up(lagging)
        for tool in reading:
            await call_ok(client, tool, **id_arguments(tool, ids))
        for resource in ("report", "graph"):
            contents = (
                await client.read_resource(f"bughive://sessions/{session_id}/{resource}")
            ).contents
            assert isinstance(contents[0], TextResourceContents)
            assert session_id in contents[0].text


async def test_while_the_replica_lags_writes_succeed_and_read_only_tools_show_its_older_view(
    lagging: Replicated,
) -> None:
    """What an agent sees during replication lag: the frontier (claims, leases, counters) is
    the primary's and stays exact; statistics and lists are the replica's last consistent
    snapshot, a little behind, never a mix."""
    async with Client(server_on(lagging)) as client:
        session_id = await new_crawl(client, 6)
        await caught_up(lagging)
        await set_replay(lagging, paused=True)

        claim = await call_ok(client, "claim_pages_to_crawl", session_id=session_id, limit=10)
        assert (len(claim["items"]), claim["remaining"]) == (6, 0)
        for page in claim["items"][:4]:
            await call_ok(
                client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"]
            )
        refused = await call(client, "complete_session", {"session_id": session_id})
        assert refused.is_error and "leased" in only_text(refused)  # the primary's truth

        behind = await call_ok(client, "get_session_statistics", session_id=session_id)
        assert behind["pages_by_status"]["discovered"] == 6
        assert behind["pages_by_status"]["analyzed"] == 0
        assert (await call_ok(client, "get_pages_to_crawl", session_id=session_id))["total"] == 6
        assert (await call_ok(client, "get_session", session_id=session_id))["pages_crawled"] == 0

        await set_replay(lagging, paused=False)
        await caught_up(lagging)
        current = await call_ok(client, "get_session_statistics", session_id=session_id)
        assert current["pages_by_status"]["analyzed"] == 4
        assert current["pages_by_status"]["crawling"] == 2
        assert (await call_ok(client, "get_pages_to_crawl", session_id=session_id))["total"] == 0
        assert (await call_ok(client, "get_session", session_id=session_id))["pages_crawled"] == 4


async def test_with_remote_apply_a_crawl_through_every_tool_reads_its_own_writes(
    applied: Replicated,
) -> None:
    """Every tool, with a replica whose primary commits only once the standby applied it: each
    read-only tool, on the replica, sees what the calls before it wrote."""
    async with Client(server_on(applied)) as client:
        assert await crawl_with_every_tool(client) == every_tool()


async def test_the_read_database_is_read_only_even_when_pointed_at_the_primary(
    lagging: Replicated,
) -> None:
    """Belt and braces: a hot standby cannot be written, and the read ``Database`` opens READ
    ONLY transactions besides, so a DATABASE_READ_URL naming the primary by mistake is harmless."""
    url = lagging.primary.render_as_string(hide_password=False)
    read_db = read_replica(make_config(database_url=url, database_read_url=url))
    assert read_db is not None
    try:
        with pytest.raises(asyncpg.PostgresError, match="read-only transaction"):
            async with read_db.session() as s:
                await s.execute(text("DELETE FROM crawl_sessions"))
    finally:
        await read_db.close()


def test_database_read_url_comes_from_the_environment_normalized_and_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "DATABASE_READ_URL", "postgres://reader:s3cret@replica.internal:5432/bughive"
    )
    config = make_config()

    assert config.read_url is not None
    assert config.read_url.drivername == "postgresql+asyncpg"
    assert config.read_url.host == "replica.internal"
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.read_url)
