"""The MCP logging capability for handshake-era clients (protocol 2025-11-25 and earlier).

BugHive logs to stderr and sends no ``notifications/message``; ``logging/setLevel`` sets the
level of its own loggers (``bughive_mcp``, ``db``) there. Clients and the official conformance
suite (scenario ``logging-set-level``) expect the capability declared in ``initialize`` and the
method answered; without it they got -32601 Method not found.

It is a middleware (``MCPServer.middleware``, the SDK's public hook and the only one it gives
for ``initialize``): the SDK declares ``logging`` only for a ``logging/setLevel`` handler
registered on its low-level server, which ``MCPServer`` does not expose. The 2026-07-28
revision removed the method (SEP-2577), so modern connections get the SDK's answer unchanged.
"""

import logging
from typing import Any, get_args

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, LoggingLevel, SetLevelRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

SERVER_LOGGERS = ("bughive_mcp", "db")

# MCP's levels (RFC 5424) on Python's: Python has nothing between INFO and WARNING, nor above
# CRITICAL, so "notice" shows what "warning" shows, and "alert"/"emergency" what "critical" does.
PYTHON_LEVELS: dict[LoggingLevel, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}

_LEVELS_TOLD = ", ".join(get_args(LoggingLevel))


def set_server_log_level(params: Any) -> LoggingLevel:
    """Set BugHive's loggers to the level in ``logging/setLevel``'s raw ``params``; invalid
    params (-32602) naming the levels when there is no valid one."""
    try:
        level = SetLevelRequestParams.model_validate(params or {}, by_name=False).level
    except ValidationError:
        raise MCPError(INVALID_PARAMS, f"'level' must be one of {_LEVELS_TOLD}") from None
    for name in SERVER_LOGGERS:
        logging.getLogger(name).setLevel(PYTHON_LEVELS[level])
    return level


async def logging_capability(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Middleware: ``logging`` in the ``initialize`` result's capabilities, and an empty result
    for ``logging/setLevel`` once its level is set (handshake-era connections only)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return await call_next(ctx)
    if ctx.method == "logging/setLevel" and ctx.request_id is not None:
        set_server_log_level(ctx.params)
        return {}
    result = await call_next(ctx)
    if ctx.method == "initialize" and isinstance(result, dict):
        result.setdefault("capabilities", {})["logging"] = {}
    return result
