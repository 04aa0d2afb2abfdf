"""One mapping from everything a tool can raise to what the agent sees.

- Domain errors (``db.errors``) carry safe, actionable messages: passed through.
- Argument validation errors are rewritten to name each offending field and what is allowed,
  without echoing the rejected value (it may be huge, or a secret).
- Anything else is logged to stderr with its traceback and reported as a short generic error:
  no SQL, no driver text, no connection string ever reaches the client.
"""

from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from db.errors import DomainError

# An unexpected failure is a bug in the server: nothing says the same call would succeed if
# repeated (failures a retry can fix are domain errors that say so, e.g. DatabaseUnavailable),
# so the agent is not sent round a loop that fails every time.
INTERNAL_ERROR = (
    "internal error: the server failed unexpectedly and logged the failure; this is a bug in "
    "the server, so report it (with the tool name and the time) rather than repeating the call"
)


def describe_validation_error(exc: ValidationError, schema: dict[str, Any] | None = None) -> str:
    """``"2 invalid arguments: 'limit' must be between 1 and 100; 'status' must be one of …"``.

    With the tool's input ``schema``, a value out of bounds is told the whole allowed range
    (pydantic's own message names only the bound it crossed: "greater than or equal to 1")."""
    problems = [
        _with_range(err, schema) or _describe(err)
        for err in exc.errors(include_url=False, include_input=False)
    ]
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


# Errors of a number crossing a bound: pydantic names only that bound.
_NUMBER_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _with_range(err: ErrorDetails, schema: dict[str, Any] | None) -> str | None:
    """``'limit' must be between 1 and 100`` for an argument out of its bounds, when the tool's
    schema gives both ends; None otherwise (the caller then uses pydantic's message)."""
    if schema is None or len(err["loc"]) != 1 or err["type"] not in _NUMBER_BOUNDS:
        return None
    name = str(err["loc"][0])
    spec = schema.get("properties", {}).get(name)
    if not isinstance(spec, dict):
        return None
    return _number_range(name, spec)


def _number_range(name: str, spec: dict[str, Any]) -> str | None:
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        return f"'{name}' must be between {low} and {high}"
    lower = (
        f"at least {low}" if low is not None else _phrase("greater than", spec, "exclusiveMinimum")
    )
    upper = (
        f"at most {high}" if high is not None else _phrase("less than", spec, "exclusiveMaximum")
    )
    if lower and upper:
        return f"'{name}' must be {lower} and {upper}"
    return None


def _phrase(words: str, spec: dict[str, Any], key: str) -> str | None:
    return f"{words} {spec[key]}" if key in spec else None


def to_tool_error(
    tool: str, exc: Exception, schema: dict[str, Any] | None = None
) -> ToolError | None:
    """The client-facing error for ``exc``, or None when ``exc`` is not ours to translate;
    ``schema``: the tool's input schema, for the allowed ranges of arguments out of bounds."""
    if isinstance(exc, DomainError):
        return ToolError(f"Error executing tool {tool}: {exc}")
    if isinstance(exc, ValidationError):
        described = describe_validation_error(exc, schema)
        return ToolError(f"Error executing tool {tool}: {described}")
    return None
