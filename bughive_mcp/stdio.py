"""The stdio transport: one JSON-RPC message per line, and an answer for every line that is not.

Upstream behaviour (mcp 2.3, ``mcp.server.stdio.stdio_server`` behind ``run_stdio_async``): a
line that does not validate as a JSON-RPC message is handed to the server as an exception item,
which the dispatcher logs at DEBUG and drops. The client gets no answer and waits for its
timeout, where HTTP answers the same body with 400 / -32700. That transport also decodes stdin
with ``errors="replace"``, so invalid UTF-8 reached the tools as U+FFFD. The SDK has no hook
for either, so BugHive reads stdin itself:

- not UTF-8, not JSON, or nested deeper than the SDK's JSON parser allows (pydantic-core,
  about 200 levels): -32700 Parse error;
- JSON that is not one JSON-RPC message (a batch array: MCP removed batching in 2025-06-18; a
  non-object; no ``"jsonrpc": "2.0"``; no or a non-string ``method``; ``params`` not an object;
  an ``id`` neither string nor integer, which the SDK took for a notification): -32600 Invalid
  Request;
- the error carries the line's ``id`` when one can be read from it, else null. A malformed
  *response* is not answered: an error with its id would be read as the answer to the client's
  own request of that id (each direction numbers its requests itself);
- each refused line is logged once on stderr (its number, size and what is wrong, never its
  content); blank lines are skipped.

Valid messages reach the server as they would through the SDK's transport: the low-level
server's public ``run(read_stream, write_stream, initialization_options)`` on memory streams,
which is what ``MCPServer.run_stdio_async`` calls.
"""

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pydantic_core
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """Why a line is not a JSON-RPC message, and the error it is answered with."""

    code: int
    message: str
    request_id: RequestId | None
    answered: bool = True  # False for a malformed response (see the module docstring)

    def answer(self) -> JSONRPCError:
        return JSONRPCError(
            jsonrpc="2.0", id=self.request_id, error=ErrorData(code=self.code, message=self.message)
        )


def read_message(line: bytes) -> JSONRPCMessage | Refusal:
    """The JSON-RPC message on ``line``, or why it is none: the SDK's own parser and message
    model decide (as its HTTP transport does); this only explains a refusal."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _refusal(PARSE_ERROR, f"Parse error: not UTF-8 (byte {exc.start})", _lenient(line))
    try:
        decoded = pydantic_core.from_json(text)
    except ValueError as exc:
        return _refusal(PARSE_ERROR, f"Parse error: {exc}", _lenient(line))
    try:
        message = jsonrpc_message_adapter.validate_python(decoded, by_name=False)
    except ValidationError:
        return _refusal(INVALID_REQUEST, f"Invalid Request: {_what_is_wrong(decoded)}", decoded)
    if isinstance(message, JSONRPCNotification) and "id" in decoded:
        # The SDK reads a request whose id is null, a boolean or a fraction as a notification
        # and never answers it; its sender waits for an answer all the same.
        return _refusal(INVALID_REQUEST, f"Invalid Request: {_BAD_ID}", decoded)
    return message


def _lenient(line: bytes) -> Any:
    """The line as Python's own parser reads it (invalid UTF-8 replaced, nesting up to the
    recursion limit), to find the id of a line the SDK's parser refuses; None when unreadable."""
    try:
        return json.loads(line.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None


def _refusal(code: int, message: str, decoded: Any) -> Refusal:
    if not isinstance(decoded, dict):
        return Refusal(code, message, None)
    is_response = "method" not in decoded and ("result" in decoded or "error" in decoded)
    return Refusal(code, message, _request_id(decoded.get("id")), answered=not is_response)


def _request_id(found: Any) -> RequestId | None:
    """``found`` if it is an id JSON-RPC (as MCP restricts it) allows: a string or an integer."""
    valid = isinstance(found, str) or (isinstance(found, int) and not isinstance(found, bool))
    return found if valid else None


_BAD_ID = "'id' must be a string or an integer"


def _what_is_wrong(decoded: Any) -> str:
    if isinstance(decoded, list):
        return (
            "a batch (JSON array) is not supported: MCP removed JSON-RPC batching in "
            "2025-06-18; send one message per line"
        )
    if not isinstance(decoded, dict):
        return "a message must be a JSON object"
    if decoded.get("jsonrpc") != "2.0":
        return "'jsonrpc' must be \"2.0\""
    if "method" in decoded:
        if not isinstance(decoded["method"], str):
            return "'method' must be a string"
        if decoded.get("params") is not None and not isinstance(decoded["params"], dict):
            return "'params' must be an object"
        if "id" in decoded and _request_id(decoded["id"]) is None:
            return _BAD_ID
    elif "result" in decoded or "error" in decoded:
        return "not a valid response"
    else:
        return "'method' is missing"
    return "not a valid JSON-RPC message"


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` on this process's stdin and stdout until stdin closes; what
    ``server.run_stdio_async()`` does, with an answer for every invalid line."""
    lowlevel = _lowlevel_server(server)
    with _protocol_streams() as (wire_in, wire_out):
        to_server, from_client = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        to_client, from_server = anyio.create_memory_object_stream[SessionMessage](0)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_read_lines, wire_in, to_server, to_client.clone())
            tasks.start_soon(_write_lines, wire_out, from_server)
            await lowlevel.run(from_client, to_client, lowlevel.create_initialization_options())


def _lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    # MCPServer has no public accessor for its low-level server yet; the SDK's own in-memory
    # client reads the same attribute (mcp/client/_memory.py: "TODO: Make `lowlevel_server`
    # public"). The one private access here: switch to the public name once there is one.
    return server._lowlevel_server


async def _read_lines(
    wire_in: io.BufferedReader,
    to_server: MemoryObjectSendStream[SessionMessage | Exception],
    answers: MemoryObjectSendStream[SessionMessage],
) -> None:
    async with to_server, answers:
        number = 0
        # abandon_on_cancel: a shutdown does not wait for a line that may never come.
        while line := await anyio.to_thread.run_sync(wire_in.readline, abandon_on_cancel=True):
            number += 1
            if not line.strip():
                continue
            read = read_message(line)
            if isinstance(read, Refusal):
                outcome = "answered" if read.answered else "not answered (a response)"
                log.warning(
                    "stdio line %d refused, %s: %d bytes; %s",
                    number,
                    outcome,
                    len(line),
                    read.message,
                )
                if read.answered:
                    await answers.send(SessionMessage(read.answer()))
                continue
            await to_server.send(SessionMessage(read))


async def _write_lines(
    wire_out: io.BufferedWriter, messages: MemoryObjectReceiveStream[SessionMessage]
) -> None:
    async with messages:
        async for message in messages:
            # The SDK's stdio framing: by alias, unset fields left out, one line each.
            text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
            await anyio.to_thread.run_sync(
                _write_line, wire_out, text.encode() + b"\n", abandon_on_cancel=True
            )


def _write_line(wire_out: io.BufferedWriter, line: bytes) -> None:
    wire_out.write(line)
    wire_out.flush()


@contextmanager
def _protocol_streams() -> Iterator[tuple[io.BufferedReader, io.BufferedWriter]]:
    """The protocol's own handles on stdin and stdout. While they are in use fd 0 reads
    /dev/null and fd 1 writes to stderr, as the SDK's stdio transport arranges, so neither a
    child process (the embedded PostgreSQL's initdb) nor a stray write can take protocol input
    or corrupt its output; both fds are put back on exit. The handles are never closed: a
    reader thread abandoned at shutdown may still be blocked on stdin's."""
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    os.dup2(2, 1)
    try:
        yield (
            open(wire_in, "rb", closefd=False),  # noqa: SIM115 - never closed, see above
            open(wire_out, "wb", closefd=False),  # noqa: SIM115
        )
    finally:
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)
