"""The whole tool surface through a real PgBouncer in transaction pooling mode: the server
configured with ``BUGHIVE_DB_PGBOUNCER=true`` and a ``DATABASE_URL`` that points at PgBouncer
runs a crawl calling every tool (and, for comparison, the same crawl straight to PostgreSQL)."""

from collections.abc import Iterator

import pytest
from mcp import Client
from sqlalchemy.engine import URL

from bughive_mcp.server import build_server
from bughive_mcp.settings import ServerSettings
from db.connection.database import Database
from tests.bughive_mcp.every_tool import crawl_with_every_tool, every_tool
from tests.conftest import make_config
from tests.infrastructure import pgbouncer, require_pgbouncer


@pytest.fixture(scope="module")
def bouncer_url(database_url: URL) -> Iterator[URL]:
    require_pgbouncer()
    with pgbouncer(database_url, pool_size=2) as url:
        yield url


@pytest.mark.parametrize("path", ["direct", "pgbouncer"])
async def test_a_crawl_through_every_tool_succeeds(
    path: str, request: pytest.FixtureRequest, database_url: URL, db: Database
) -> None:
    url = request.getfixturevalue("bouncer_url") if path == "pgbouncer" else database_url
    config = make_config(
        database_url=url.render_as_string(hide_password=False), pgbouncer=path == "pgbouncer"
    )
    server = build_server(ServerSettings(_env_file=None, auto_migrate=False), config)

    async with Client(server) as client:
        called = await crawl_with_every_tool(client)

    assert called == every_tool()
