"""Toolsets, explicit tools, exclusions and read-only mode: what is listed and callable."""

import pytest
from mcp import Client
from sqlalchemy import text
from sqlalchemy.engine import URL

from bughive_mcp.server import build_server
from bughive_mcp.settings import ServerSettings
from bughive_mcp.state import make_lifespan
from bughive_mcp.tools import catalog
from bughive_mcp.toolsets import ToolSelectionError, select_tools
from db.connection.database import Database
from tests.conftest import make_config

ALL = {spec.name for spec in catalog.specs}
READ_ONLY = {spec.name for spec in catalog.specs if spec.read_only}


def names(**kw: object) -> set[str]:
    return {spec.name for spec in select_tools(catalog.specs, **kw).enabled}  # type: ignore[arg-type]


def test_default_is_every_tool() -> None:
    assert names() == ALL


def test_toolsets_select_their_tools() -> None:
    assert names(toolsets=["bugs"]) == {s.name for s in catalog.specs if s.toolset == "bugs"}
    assert "claim_pages_to_crawl" in names(toolsets=["frontier"])


def test_tools_add_to_toolsets_and_alone_are_the_whole_selection() -> None:
    assert names(toolsets=["bugs"], tools=["get_session"]) >= {"get_session", "create_bug"}
    assert names(tools=["get_session", "get_bug"]) == {"get_session", "get_bug"}


def test_exclude_beats_toolsets_and_tools() -> None:
    chosen = names(toolsets=["all"], tools=["create_bug"], exclude_tools=["create_bug"])
    assert "create_bug" not in chosen


def test_read_only_beats_everything() -> None:
    chosen = names(toolsets=["all"], tools=["create_bug"], read_only=True)
    assert chosen == READ_ONLY
    assert "create_bug" not in chosen


def test_unknown_toolset_or_tool_is_a_clear_error() -> None:
    with pytest.raises(ToolSelectionError, match="unknown toolset 'crawling'"):
        names(toolsets=["crawling"])
    with pytest.raises(ToolSelectionError, match="unknown tool 'nope'"):
        names(exclude_tools=["nope"])


def test_environment_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGHIVE_TOOLSETS", "sessions, bugs")
    monkeypatch.setenv("BUGHIVE_EXCLUDE_TOOLS", "add_cost")
    settings = ServerSettings(_env_file=None)
    assert settings.toolsets == ["sessions", "bugs"]
    assert settings.exclude_tools == ["add_cost"]


async def test_read_only_server_lists_only_read_tools_and_refuses_hidden_ones(
    database_url: URL, db: Database
) -> None:
    settings = ServerSettings(_env_file=None, read_only=True)
    config = make_config(database_url=database_url.render_as_string(hide_password=False))
    server = build_server(settings, config)
    listed = {tool.name for tool in await server.list_tools()}
    assert listed == READ_ONLY
    async with Client(server, raise_exceptions=False) as client:
        result = await client.call_tool("create_session", {"base_url": "https://a.example"})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "not available on this server" in text and "read-only mode" in text


async def test_read_only_mode_opens_read_only_transactions(database_url: URL, db: Database) -> None:
    """Defence in depth: even a write that slipped into a read tool would be refused."""
    settings = ServerSettings(_env_file=None, read_only=True)
    config = make_config(database_url=database_url.render_as_string(hide_password=False))
    server = build_server(settings, config)
    async with Client(server) as client:
        health = await client.call_tool("check_database_health", {})
        assert health.structured_content is not None and health.structured_content["healthy"]
    async with (
        make_lifespan(config, settings)(server) as state,
        state.db.engine.connect() as conn,
    ):
        mode = await conn.scalar(text("SHOW default_transaction_read_only"))
    assert mode == "on"
