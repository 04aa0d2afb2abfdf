"""Lines that are not valid JSON-RPC, sent to ``python -m bughive_mcp serve`` over real stdio:
each gets exactly one JSON-RPC error (-32700 / -32600, with the id when it can be recovered),
is logged once on stderr, and the server goes on serving; stdout carries only JSON-RPC.

One server process hears the whole conversation (module fixture); each test checks one part of
what it answered."""

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import INVALID_REQUEST, PARSE_ERROR
from sqlalchemy.engine import URL

from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_stdio import is_json_rpc, request

CONVERSATION_SECONDS = 60

NESTED_300_DEEP = (
    b'{"jsonrpc": "2.0", "id": 5, "method": "ping", "params": {"deep": '
    + b"[" * 300
    + b"]" * 300
    + b"}}"
)

# (what, the line, the answers it must get as (code, id)); none for a malformed response.
INVALID_LINES: list[tuple[str, bytes, list[tuple[int, Any]]]] = [
    ("malformed JSON", b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', [(PARSE_ERROR, None)]),
    (
        "a batch array",
        b'[{"jsonrpc": "2.0", "id": 2, "method": "ping"}]',
        [(INVALID_REQUEST, None)],
    ),
    (
        "params a string",
        b'{"jsonrpc": "2.0", "id": 3, "method": "ping", "params": "x"}',
        [(INVALID_REQUEST, 3)],
    ),
    (
        "invalid UTF-8",
        b'{"jsonrpc": "2.0", "id": "four", "method": "ping", "params": {"note": "\xff"}}',
        [(PARSE_ERROR, "four")],
    ),
    ("JSON nested 300 deep", NESTED_300_DEEP, [(PARSE_ERROR, 5)]),
    ("not an object", b'"ping"', [(INVALID_REQUEST, None)]),
    ("no method", b'{"jsonrpc": "2.0", "id": 7}', [(INVALID_REQUEST, 7)]),
    ("no jsonrpc version", b'{"id": 8, "method": "ping"}', [(INVALID_REQUEST, 8)]),
    ("method not a string", b'{"jsonrpc": "2.0", "id": 9, "method": 42}', [(INVALID_REQUEST, 9)]),
    (
        "an id of true",
        b'{"jsonrpc": "2.0", "id": true, "method": "ping"}',
        [(INVALID_REQUEST, None)],
    ),
    # Never answered: an error with its id would be taken for the answer to the client's own
    # request 10 (the ids of the two directions are separate).
    ("a malformed response", b'{"jsonrpc": "2.0", "id": 10, "result": "x"}', []),
]

PING_IDS = {what: 1000 + n for n, (what, _, _) in enumerate(INVALID_LINES)}
LAST_ID = 2000


@dataclass
class Conversation:
    answers: dict[str, list[dict[str, Any]]]  # per invalid line, what came before its ping's
    pings_answered: set[int]
    last_answer: dict[str, Any]
    stdout: list[bytes]
    stderr: str
    returncode: int


async def converse(database_url: URL, workdir: Path) -> Conversation:
    stderr_log = workdir / "stderr.log"
    stdout: list[bytes] = []
    answers: dict[str, list[dict[str, Any]]] = {}
    pings_answered: set[int] = set()
    with stderr_log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *SERVER_COMMAND,
            "serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=child_env(database_url),
            cwd=workdir,
        )
        assert process.stdin is not None and process.stdout is not None
        stdin, out = process.stdin, process.stdout

        def send(line: bytes) -> None:
            stdin.write(line + b"\n")

        async def read_until_answered(msg_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            before: list[dict[str, Any]] = []
            while True:
                line = await out.readline()
                assert line, f"the server closed stdout early; see {stderr_log}"
                stdout.append(line)
                message = json.loads(line)
                if message.get("id") == msg_id and "method" not in message:
                    return message, before
                before.append(message)

        try:
            with anyio.fail_after(CONVERSATION_SECONDS):
                send(
                    json.dumps(
                        request(
                            0,
                            "initialize",
                            {
                                "protocolVersion": "2025-11-25",
                                "capabilities": {},
                                "clientInfo": {"name": "invalid-lines-test", "version": "0"},
                            },
                        )
                    ).encode()
                )
                await read_until_answered(0)
                send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
                for what, line, _ in INVALID_LINES:
                    send(line)
                    send(json.dumps(request(PING_IDS[what], "ping")).encode())
                    ping, answers[what] = await read_until_answered(PING_IDS[what])
                    if "result" in ping:
                        pings_answered.add(PING_IDS[what])
                send(json.dumps(request(LAST_ID, "tools/list")).encode())
                last_answer, _ = await read_until_answered(LAST_ID)
                stdin.close()
                stdout.extend((await out.read()).splitlines(keepends=True))
                returncode = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return Conversation(
        answers, pings_answered, last_answer, stdout, stderr_log.read_text(), returncode
    )


@pytest.fixture(scope="module")
def conversation(database_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Conversation:
    workdir = tmp_path_factory.mktemp("stdio-invalid-lines")
    return anyio.run(converse, database_url, workdir)


@pytest.mark.parametrize(
    ("what", "expected"),
    [pytest.param(what, expected, id=what) for what, _, expected in INVALID_LINES],
)
def test_an_invalid_line_gets_exactly_one_json_rpc_error(
    conversation: Conversation, what: str, expected: list[tuple[int, Any]]
) -> None:
    answers = conversation.answers[what]

    assert [(a.get("error", {}).get("code"), a.get("id", "absent")) for a in answers] == expected
    assert all(a["jsonrpc"] == "2.0" and a["error"]["message"] for a in answers)


def test_the_server_keeps_serving_after_each_invalid_line(conversation: Conversation) -> None:
    assert conversation.pings_answered == set(PING_IDS.values())
    assert "create_session" in {t["name"] for t in conversation.last_answer["result"]["tools"]}
    assert conversation.returncode == 0


def test_stdout_carries_nothing_but_json_rpc(conversation: Conversation) -> None:
    assert [line for line in conversation.stdout if not is_json_rpc(line)] == []
    # Nothing arrived after the last answer: no late or second answer to any line.
    assert json.loads(conversation.stdout[-1])["id"] == LAST_ID


def test_each_invalid_line_is_logged_once_without_a_traceback(conversation: Conversation) -> None:
    refused = [line for line in conversation.stderr.splitlines() if "stdio line" in line]

    assert len(refused) == len(INVALID_LINES), conversation.stderr
    assert "Traceback" not in conversation.stderr
