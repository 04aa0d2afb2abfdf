"""End to end over stdio: ``python -m bughive_mcp serve`` as a subprocess, as Claude Desktop
and IDEs run it."""

import asyncio
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from sqlalchemy.engine import URL

from db.connection.database import Database
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.toolcalls import BASE_URL, small_crawl

pytestmark = pytest.mark.anyio

START_AND_RUN_SECONDS = 60


@pytest.mark.usefixtures("db")
async def test_a_small_crawl_runs_over_stdio(database_url: URL, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=SERVER_COMMAND[0],
        args=[*SERVER_COMMAND[1:], "serve"],
        env=child_env(database_url),
        cwd=tmp_path,
    )

    with anyio.fail_after(START_AND_RUN_SECONDS):
        async with Client(params) as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
            assert {"create_session", "create_bug", "complete_session"} <= listed
            await small_crawl(client)


def request(msg_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def is_json_rpc(line: bytes) -> bool:
    """A JSON-RPC 2.0 response, error or request/notification, on one line."""
    try:
        message = json.loads(line)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    if "method" in message:
        return isinstance(message["method"], str)
    return "id" in message and (("result" in message) != ("error" in message))


@pytest.mark.parametrize("database", ["configured", "embedded"])
async def test_stdout_carries_nothing_but_json_rpc(
    db: Database, database_url: URL, tmp_path: Path, database: str
) -> None:
    """Also on the zero-setup path: initdb and the embedded server must not write to stdout."""
    stderr_log = tmp_path / "stderr.log"
    lines: list[bytes] = []
    with stderr_log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *SERVER_COMMAND,
            "serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=(
                child_env(database_url)
                if database == "configured"
                else child_env(None, XDG_DATA_HOME=str(tmp_path / "data"))
            ),
            cwd=tmp_path,
        )
        assert process.stdin is not None and process.stdout is not None
        stdin, stdout = process.stdin, process.stdout

        def send(*messages: dict[str, Any]) -> None:
            for message in messages:
                stdin.write(json.dumps(message).encode() + b"\n")

        async def read_until_answered(*ids: int) -> None:
            waiting = set(ids)
            while waiting:
                line = await stdout.readline()
                assert line, "the server closed stdout early; see " + str(stderr_log)
                lines.append(line)
                if is_json_rpc(line):
                    waiting.discard(json.loads(line).get("id"))

        try:
            with anyio.fail_after(START_AND_RUN_SECONDS):
                send(
                    request(
                        1,
                        "initialize",
                        {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "raw-stdio-test", "version": "0"},
                        },
                    )
                )
                await read_until_answered(1)
                send(
                    {"jsonrpc": "2.0", "method": "notifications/initialized"},
                    request(2, "tools/list"),
                    request(
                        3,
                        "tools/call",
                        {"name": "create_session", "arguments": {"base_url": BASE_URL}},
                    ),
                    request(
                        4, "tools/call", {"name": "get_session", "arguments": {"session_id": "x"}}
                    ),
                )
                await read_until_answered(2, 3, 4)
                stdin.close()
                lines.extend((await stdout.read()).splitlines(keepends=True))
                returncode = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert lines
    assert [line for line in lines if not is_json_rpc(line)] == []
    answers = {m["id"]: m for m in map(json.loads, lines) if "id" in m}
    assert answers[3]["result"]["isError"] is False
    assert answers[4]["result"]["isError"] is True
    assert returncode == 0
    # The server does log: to stderr, where it belongs.
    assert "tool=create_session outcome=ok" in stderr_log.read_text()


class RawStdio:
    """A ``serve`` child spoken to in raw JSON-RPC lines: what a client puts on the wire,
    byte for byte (the SDK's client would send NaN and Infinity as null)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.stdin, self.stdout = process.stdin, process.stdout
        self.next_id = 0

    async def ask(self, method: str, params_json: str) -> dict[str, Any]:
        """Send one request whose params are the JSON text ``params_json``; its answer."""
        self.next_id += 1
        line = f'{{"jsonrpc": "2.0", "id": {self.next_id}, "method": "{method}", '
        self.stdin.write(f'{line}"params": {params_json}}}\n'.encode())
        while True:
            answer = await self.stdout.readline()
            assert answer, "the server closed stdout early"
            message = json.loads(answer)
            if message.get("id") == self.next_id:
                return dict(message)

    async def call_tool(self, name: str, arguments_json: str) -> dict[str, Any]:
        answer = await self.ask(
            "tools/call", f'{{"name": "{name}", "arguments": {arguments_json}}}'
        )
        return dict(answer["result"])

    async def call_ok(self, name: str, **arguments: Any) -> dict[str, Any]:
        result = await self.call_tool(name, json.dumps(arguments))
        assert result["isError"] is False, result
        return dict(result["structuredContent"])


@pytest.mark.usefixtures("db")
async def test_non_finite_numbers_on_the_wire_are_refused_naming_the_field(
    database_url: URL, tmp_path: Path
) -> None:
    """NaN, Infinity and 1e999 are read from the wire as floats PostgreSQL's json cannot hold:
    they are refused naming where they are, not failed as an internal error."""
    process = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        "serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=child_env(database_url),
        cwd=tmp_path,
    )
    wire = RawStdio(process)
    try:
        with anyio.fail_after(START_AND_RUN_SECONDS):
            hello = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            }
            await wire.ask("initialize", json.dumps(hello))
            wire.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            session = await wire.call_ok("create_session", base_url=BASE_URL)
            await wire.call_ok("start_session", session_id=session["id"])
            page = await wire.call_ok("create_page", session_id=session["id"], url=BASE_URL)
            claim = await wire.call_ok("mark_crawling", page_id=page["id"])
            finish = f'"page_id": "{page["id"]}", "claim_token": "{claim["claim_token"]}"'
            bug = (
                f'"session_id": "{session["id"]}", "page_id": "{page["id"]}", "category": '
                '"ui_ux", "priority": "low", "title": "t", "description": "d"'
            )
            refused = [
                await wire.call_tool(
                    "mark_analyzed", f'{{{finish}, "analysis_result": {{"score": NaN}}}}'
                ),
                await wire.call_tool("create_bug", f'{{{bug}, "browser_info": {{"dpr": 1e999}}}}'),
                await wire.call_tool(
                    "create_bug",
                    f'{{{bug}, "evidence": [{{"type": "dom", "content": -Infinity}}]}}',
                ),
            ]
            unchanged = await wire.call_ok("get_page", page_id=page["id"])
            counted = await wire.call_ok("get_session", session_id=session["id"])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    messages = [result["content"][0]["text"] for result in refused]
    assert all(result["isError"] for result in refused), messages
    for message, where in zip(
        messages, ["analysis_result.score", "browser_info.dpr", "evidence.0.content"], strict=True
    ):
        assert f"1 invalid argument: '{where}' must be a finite number" in message
        assert "internal error" not in message
    assert (unchanged["status"], counted["bugs_found"]) == ("crawling", 0)
