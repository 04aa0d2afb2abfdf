"""One mapping from everything a tool can raise to what the agent sees.

- Domain errors (``db.errors``) carry safe, actionable messages: passed through.
- Argument validation errors are rewritten to name each offending field and what is allowed,
  without echoing the rejected value (it may be huge, or a secret).
- Anything else is logged to stderr with its traceback and reported as a short generic error:
  no SQL, no driver text, no connection string ever reaches the client.
"""

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from db.errors import DomainError

INTERNAL_ERROR = (
    "internal error; the failure was logged on the server. Retry, or report it if it persists"
)


def describe_validation_error(exc: ValidationError) -> str:
    """``"2 invalid arguments: 'limit': must be ≤ 100; 'status': must be one of …"``."""
    problems = [_describe(err) for err in exc.errors(include_url=False, include_input=False)]
    noun = "argument" if len(problems) == 1 else "arguments"
    return f"{len(problems)} invalid {noun}: " + "; ".join(problems)


def _describe(err: ErrorDetails) -> str:
    loc = ".".join(str(part) for part in err["loc"]) or "arguments"
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "missing":
        return f"'{loc}' is required"
    if kind == "extra_forbidden":
        return f"'{loc}' is not a known argument"
    if kind == "enum" and "expected" in ctx:
        return f"'{loc}' must be one of {ctx['expected']}"
    return f"'{loc}': {err['msg']}"


def to_tool_error(tool: str, exc: Exception) -> ToolError | None:
    """The client-facing error for ``exc``, or None when ``exc`` is not ours to translate."""
    if isinstance(exc, DomainError):
        return ToolError(f"Error executing tool {tool}: {exc}")
    if isinstance(exc, ValidationError):
        return ToolError(f"Error executing tool {tool}: {describe_validation_error(exc)}")
    return None
