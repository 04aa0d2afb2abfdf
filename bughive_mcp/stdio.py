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

Valid messages reach the server through the SDK's own transport (``run_stdio_async``), which
reads them from a pipe this module fills (see :func:`serve_stdio`).
"""

import contextlib
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
from mcp.server.mcpserver import MCPServer
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
    """Serve ``server`` on this process's stdin and stdout until stdin closes: the SDK's own
    ``server.run_stdio_async()``, with an answer for every invalid line.

    The SDK's transport runs on two pipes put in place of fd 0 and fd 1 (:func:`_sdk_pipes`):
    this module reads the client's lines, passes the valid ones into the SDK's input pipe and
    answers the others itself, and copies the SDK's output to the client a whole line at a
    time, between its own answers, so two answers never interleave on the wire."""
    with _sdk_pipes() as pipes:
        to_client, from_both = anyio.create_memory_object_stream[bytes](0)
        async with anyio.create_task_group() as writing:
            writing.start_soon(_write_lines, pipes.client_out, from_both)
            async with to_client, anyio.create_task_group() as copying:
                copying.start_soon(_copy_sdk_output, pipes.sdk_out, to_client.clone())
                async with anyio.create_task_group() as reading:
                    reading.start_soon(
                        _read_lines, pipes.client_in, pipes.sdk_in, to_client.clone()
                    )
                    try:
                        await server.run_stdio_async()
                    finally:
                        # The client closed stdin (the SDK read EOF) or the server stopped.
                        reading.cancel_scope.cancel()
                        pipes.end_sdk_output()


# The last line of the SDK's output pipe, written once the SDK's transport has ended (and so
# flushed every answer): JSON never contains a raw NUL, so no answer can look like it.
_END_OF_SDK_OUTPUT = b"\x00end of the SDK's output\n"


@dataclass(frozen=True)
class _Pipes:
    client_in: io.BufferedReader  # the client's lines
    client_out: io.BufferedWriter  # to the client
    sdk_in: io.BufferedWriter  # the valid lines, to the SDK's transport (its fd 0)
    sdk_out: io.BufferedReader  # what the SDK's transport writes (its fd 1)
    sdk_out_end: int

    def end_sdk_output(self) -> None:
        os.write(self.sdk_out_end, _END_OF_SDK_OUTPUT)


@contextmanager
def _sdk_pipes() -> Iterator[_Pipes]:
    """The client's stdin and stdout, and two pipes on fd 0 and fd 1 for the SDK's transport,
    which claims them as it claims a terminal (fd 0 then reads /dev/null and fd 1 writes to
    stderr while it serves, so neither a child process — the embedded PostgreSQL's initdb — nor
    a stray write can take protocol input or corrupt its output). The client's fds are put
    back on exit. Nothing a reader thread may still be blocked on is closed: a thread abandoned
    at shutdown may be waiting in it."""
    sys.stdout.flush()
    client_in, client_out = os.dup(0), os.dup(1)
    sdk_in_read, sdk_in_write = os.pipe()
    sdk_out_read, sdk_out_write = os.pipe()
    os.dup2(sdk_in_read, 0)
    os.close(sdk_in_read)
    os.dup2(sdk_out_write, 1)
    try:
        yield _Pipes(
            client_in=open(client_in, "rb", closefd=False),  # noqa: SIM115 - never closed
            client_out=open(client_out, "wb", closefd=False),  # noqa: SIM115
            sdk_in=open(sdk_in_write, "wb"),  # noqa: SIM115 - closed at the client's EOF
            sdk_out=open(sdk_out_read, "rb", closefd=False),  # noqa: SIM115
            sdk_out_end=sdk_out_write,
        )
    finally:
        os.dup2(client_in, 0)
        os.dup2(client_out, 1)


async def _read_lines(
    client_in: io.BufferedReader,
    sdk_in: io.BufferedWriter,
    to_client: MemoryObjectSendStream[bytes],
) -> None:
    """Pass the client's valid lines to the SDK, answer the others; at EOF, end the SDK's
    input too."""
    async with to_client:
        try:
            number = 0
            # abandon_on_cancel: a shutdown does not wait for a line that may never come.
            while line := await anyio.to_thread.run_sync(
                client_in.readline, abandon_on_cancel=True
            ):
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
                        answer = read.answer().model_dump_json(by_alias=True, exclude_unset=True)
                        await to_client.send(answer.encode() + b"\n")
                    continue
                # In valid JSON a raw CR can only be whitespace; the SDK's text reader would
                # take it for the end of a line.
                await anyio.to_thread.run_sync(
                    _write_line, sdk_in, line.replace(b"\r", b" "), abandon_on_cancel=True
                )
        finally:
            with contextlib.suppress(OSError):
                sdk_in.close()


async def _copy_sdk_output(
    sdk_out: io.BufferedReader, to_client: MemoryObjectSendStream[bytes]
) -> None:
    async with to_client:
        while True:
            line = await anyio.to_thread.run_sync(sdk_out.readline, abandon_on_cancel=True)
            if not line or line == _END_OF_SDK_OUTPUT:
                return
            await to_client.send(line)


async def _write_lines(
    client_out: io.BufferedWriter, lines: MemoryObjectReceiveStream[bytes]
) -> None:
    async with lines:
        async for line in lines:
            await anyio.to_thread.run_sync(_write_line, client_out, line, abandon_on_cancel=True)


def _write_line(out: io.BufferedWriter, line: bytes) -> None:
    out.write(line)
    out.flush()
