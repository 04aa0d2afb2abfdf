"""Fixtures for the MCP surface: the real server object over the test database, reached through
the SDK's in-memory client, both with direct dispatch (newest protocol) and with JSON-RPC
framing after an ``initialize`` handshake (``mode="legacy"``, what stdio clients do)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from sqlalchemy.engine import URL

from bughive_mcp.server import BugHiveServer, build_server
from bughive_mcp.settings import ServerSettings
from db.connection.database import Database
from tests.conftest import make_config


def make_server(database_url: URL, **settings: Any) -> BugHiveServer:
    """The server as ``bughive-mcp serve`` builds it, on the test database, independent of the
    developer's environment file. The database is already at head, so start-up migration is
    off here (the subprocess tests run it)."""
    server_settings = ServerSettings(_env_file=None, auto_migrate=False, **settings)
    config = make_config(database_url=database_url.render_as_string(hide_password=False))
    return build_server(server_settings, config)


@pytest.fixture(scope="session")
def built_server(database_url: URL) -> BugHiveServer:
    """Built once: the database opens in the lifespan, i.e. anew for every client."""
    return make_server(database_url)


@pytest.fixture
def server(built_server: BugHiveServer, db: Database) -> BugHiveServer:
    """The server for one test; depending on ``db`` empties the tables after the test."""
    return built_server


@pytest.fixture
async def client(server: BugHiveServer) -> AsyncIterator[Client]:
    """In-process client on the newest protocol: direct dispatch, no JSON-RPC framing."""
    async with Client(server) as connected:
        yield connected


@pytest.fixture
async def legacy_client(server: BugHiveServer) -> AsyncIterator[Client]:
    """In-process client speaking JSON-RPC over memory streams after ``initialize``."""
    async with Client(server, mode="legacy") as connected:
        yield connected


@pytest.fixture(params=["direct", "json-rpc"])
async def any_client(
    request: pytest.FixtureRequest, server: BugHiveServer
) -> AsyncIterator[Client]:
    """Both framings, for the tests that must hold on the wire as well as in process."""
    mode = "legacy" if request.param == "json-rpc" else "auto"
    async with Client(server, mode=mode) as connected:
        yield connected


@pytest.fixture(scope="session")
def full_schema_server(database_url: URL) -> BugHiveServer:
    return make_server(database_url, output_schemas="full")


@pytest.fixture
async def full_schema_client(
    full_schema_server: BugHiveServer, db: Database
) -> AsyncIterator[Client]:
    """A client of a server listing complete output schemas (``BUGHIVE_OUTPUT_SCHEMAS=full``):
    the SDK client validates every structured result against them."""
    async with Client(full_schema_server) as connected:
        yield connected
