"""The README is part of the product: its commands and client configs must work as written."""

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from sqlalchemy.engine import URL

from bughive_mcp.settings import ServerSettings
from db.connection.config import DatabaseConfig
from db.connection.database import Database

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PLACEHOLDER_ROOT = "/path/to/bughive-mcp"


def fenced_blocks_after(marker: str) -> list[tuple[str, str]]:
    """(name, code) of every fenced block that follows a ``<!-- marker: name -->`` comment."""
    pattern = rf"<!-- {marker}: ([\w-]+) -->\s*```\w*\n(.*?)```"
    return re.findall(pattern, README, flags=re.S)


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = [b.strip() for b in code_blocks("bash") if "pytest" in b]
    assert len(commands) == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[0] in ci.splitlines()


def test_every_setting_is_documented() -> None:
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for cls, prefix in ((DatabaseConfig, "BUGHIVE_DB_"), (ServerSettings, "BUGHIVE_")):
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names = [c for c in getattr(alias, "choices", []) if isinstance(c, str) and c.isupper()]
            env = names[0] if names else f"{prefix}{name}".upper()
            assert f"`{env}`" in table, f"{env} is missing from the README's settings table"


def launch_command(name: str, code: str) -> tuple[str, list[str], dict[str, str]]:
    """The command, arguments and environment a client would use, from its snippet."""
    if name == "claude-code":
        words = shlex.split(code.replace("\\\n", " "))
        before, after = words[: words.index("--")], words[words.index("--") + 1 :]
        env = dict(before[i + 1].split("=", 1) for i, w in enumerate(before) if w == "-e")
        command, args = after[0], after[1:]
    else:
        config: dict[str, Any] = json.loads(code)
        entry = (config.get("mcpServers") or config["servers"])["bughive"]
        command, args, env = (
            entry["command"],
            list(entry.get("args", [])),
            dict(entry.get("env", {})),
        )
    command = command.replace(PLACEHOLDER_ROOT, str(ROOT))
    if not Path(command).exists():  # e.g. tests run from another virtualenv than .venv
        command = str(Path(sys.executable).parent / Path(command).name)
    return command, args, env


CLIENTS = fenced_blocks_after("client-config")


def test_the_readme_has_the_four_client_configs() -> None:
    assert {name for name, _ in CLIENTS} == {"claude-desktop", "claude-code", "vscode", "cursor"}


@pytest.mark.parametrize(("name", "code"), CLIENTS, ids=[name for name, _ in CLIENTS])
async def test_client_config_starts_a_working_server(
    name: str, code: str, database_url: URL, db: Database, tmp_path: Path
) -> None:
    command, args, env = launch_command(name, code)
    if "DATABASE_URL" in env:
        # the snippet's example server does not exist here: point it at the test database
        env["DATABASE_URL"] = database_url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
    else:
        # zero-setup path: the embedded PostgreSQL, in a throwaway per-user data directory
        env["XDG_DATA_HOME"] = str(tmp_path)
    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(tmp_path))
    async with Client(params) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        health = await client.call_tool("check_database_health", {})
    assert health.structured_content is not None and health.structured_content["healthy"]
    if "--read-only" in args:
        assert all(t.annotations and t.annotations.read_only_hint for t in tools.values())
    else:
        assert "claim_pages_to_crawl" in tools
