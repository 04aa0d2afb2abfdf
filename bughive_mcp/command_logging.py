"""Where the ``bughive-mcp`` commands' messages go: plain lines on stderr, under the
``bughive_mcp`` logger.

stdout belongs to the MCP protocol in stdio mode, so every command logs to stderr, and only
``doctor`` and ``report`` (commands whose output is their answer) print to stdout. One module,
so the parser and every command share one setup and one way of reporting a failure.
"""

import logging
import sys

log = logging.getLogger("bughive_mcp")


def configure_logging(level: str) -> None:
    """Plain lines on stderr for everything (the SDK's own setup then becomes a no-op)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic.runtime.migration", "httpx", "mcp.server.lowlevel.server"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def report_failure(what: str, failure: BaseException) -> None:
    """One line for the operator; the traceback too at ``--log-level debug``."""
    debug = log.isEnabledFor(logging.DEBUG)
    log.error("%s: %s", what, failure, exc_info=failure if debug else None)
