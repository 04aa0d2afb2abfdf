"""``bughive-mcp serve``: run the MCP server over stdio or streamable HTTP until the end of
input or a shutdown signal, and turn a refused start into one line and exit code 2.

Apart from the parser (``bughive_mcp.cli``) because it is the long-running command; the heavy
imports (the server, uvicorn) stay inside ``serve`` so the other commands start fast.
"""

from functools import partial

from bughive_mcp.command_logging import log, report_failure
from bughive_mcp.settings import ServerSettings
from db.connection.config import DatabaseConfig


def serve(settings: ServerSettings) -> int:
    """Serve until the end of input (stdio) or a shutdown signal (both transports, see
    bughive_mcp/shutdown.py); either way the process then exits normally, with code 0."""
    from bughive_mcp.server import build_server
    from bughive_mcp.shutdown import (
        HTTP_SHUTDOWN_GRACE_SECONDS,
        UvicornServer,
        endable_stdin,
        run_until_signalled,
    )
    from bughive_mcp.stdio import serve_stdio
    from bughive_mcp.toolsets import ToolSelectionError

    try:
        server = build_server(settings, DatabaseConfig())
    except ToolSelectionError as exc:
        log.error("%s", exc)
        return 2
    if settings.transport == "stdio":
        try:
            # The pipe must be on fd 0 before serve_stdio takes its own handle on it.
            with endable_stdin() as end_input:
                run_until_signalled(partial(serve_stdio, server), stop=end_input)
        except Exception as exc:
            refusal = _start_refusal(exc)
            if refusal is None:
                raise
            report_failure("cannot start", refusal)
            return 2
        return 0

    import uvicorn

    from bughive_mcp.http import InsecureBindError, build_http_app

    try:
        app = build_http_app(server, settings)
    except InsecureBindError as exc:
        log.error("%s", exc)
        return 2
    log.info("serving MCP over HTTP on http://%s:%d/mcp", settings.host, settings.port)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        timeout_graceful_shutdown=HTTP_SHUTDOWN_GRACE_SECONDS,
    )
    http_server = UvicornServer(config)
    # The start (database, schema) runs while /healthz already answers: when it fails, stop.
    server.readiness.call_on_failure(http_server.stop)
    run_until_signalled(http_server.serve, stop=http_server.stop)
    failure = server.readiness.failure
    if failure is None:
        return 0
    refusal = _start_refusal(failure)
    if refusal is None:
        log.error("cannot start", exc_info=failure)
        return 1
    report_failure("cannot start", refusal)
    return 2


def _start_refusal(exc: BaseException) -> Exception | None:
    """The domain error (e.g. stored credentials without their key) that stopped the server's
    start, possibly inside exception groups: reported as one clear line, not a traceback."""
    from db.errors import DomainError

    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _start_refusal(inner)
            if found is not None:
                return found
    return None
