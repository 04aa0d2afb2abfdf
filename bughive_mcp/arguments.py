"""How BugHive runs a tool call: its arguments validated (text arguments kept as sent), the
tool function called, its result sent once.

Only the SDK's public registration API is used: a tool is a ``Tool.from_function`` (its
argument model and output model are that object's public fields), and the server lists it
through ``MCPServer(tools=…)``. The call itself is run here rather than by ``Tool.run`` because
BugHive handles arguments and results differently in two ways, and the SDK offers no public
hook for either (the earlier way, a subclass of its ``FuncMetadata``, overrode methods the SDK
calls internally: an upgrade could change when they run, silently):

- **Text arguments stay text.** The SDK JSON-decodes string arguments of every parameter not
  annotated exactly ``str`` (some clients send lists and objects as JSON text). For a parameter
  that accepts text but is not plain ``str`` — ``str | None``, as most optional texts are — that
  turned a page titled "null" into no title at all, and titles such as "true", "[1]" or "{}"
  into a type error. Text from a website can be anything: for parameters that accept text, the
  string is kept as it was sent. Lists and objects sent as JSON text are still decoded for
  every other parameter, by the SDK's rule (``tests/bughive_mcp/test_arguments.py`` compares).
- **Results go out once.** The SDK made an indented JSON text of every result and dumped it
  again for the structured content. For a tool returning its declared pydantic model, the
  model is dumped once, and that dump is both the structured content and (as compact JSON)
  the text (the passes took about 25 ms of a 10,000-page ``bulk_create_pages`` answer).

Failures keep the SDK's contract (``Tool.run``'s docstring), which the call boundary in
``bughive_mcp.server`` relies on: invalid arguments and deliberate tool errors are a
``ToolError`` whose ``__cause__`` is what was raised; anything else an ``UnexpectedToolError``.
"""

import functools
import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic_core
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel, ValidationError


def accepts_text(annotation: Any) -> bool:
    """Whether a parameter of this type takes a string as a string (``str``, ``str | None``)."""
    if annotation is str:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return accepts_text(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(accepts_text(arg) for arg in get_args(annotation))
    return False


@functools.cache
def decoded_parameters(arg_model: type[BaseModel]) -> frozenset[str]:
    """The argument names (field names and aliases) whose string values may be JSON text to
    decode: every parameter that does not take text (once per tool, not per call)."""
    names: set[str] = set()
    for name, info in arg_model.model_fields.items():
        if not accepts_text(info.annotation):
            names.add(name)
            if info.alias:
                names.add(info.alias)
    return frozenset(names)


# JSON text is decoded only when it decodes to a list, an object or null: the SDK keeps no
# decoded string, number or boolean (the raw text is left to validation then).
_DECODED_STARTS = ("[", "{")


def decode_json_text(value: str) -> Any:
    """``value`` decoded when it is the JSON text of a list, an object or ``null``; otherwise
    ``value`` itself. The SDK's rule, without trying to parse every UUID, enum and number sent
    as a string (a raised and caught ``ValueError`` each)."""
    stripped = value.strip()
    if not (stripped.startswith(_DECODED_STARTS) or stripped == "null"):
        return value
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        return value
    return value if isinstance(decoded, str | int | float) else decoded


def decoded_arguments(arg_model: type[BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` as validation should see them: JSON text decoded for the parameters that
    do not take text, every other value as sent."""
    decoded = decoded_parameters(arg_model)
    return {
        key: decode_json_text(value) if key in decoded and isinstance(value, str) else value
        for key, value in arguments.items()
    }


def keyword_arguments(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The validated keyword arguments of ``tool``'s function (sub-models kept as models)."""
    arg_model = tool.fn_metadata.arg_model
    validated = arg_model.model_validate(decoded_arguments(arg_model, arguments))
    return {
        info.alias or name: getattr(validated, name)
        for name, info in type(validated).model_fields.items()
    }


async def run_tool(tool: Tool, arguments: dict[str, Any], context: Any) -> CallToolResult:
    """Call ``tool`` with ``arguments`` (and the request ``context``, where the function takes
    one) and convert what it returns; failures as the module docstring says."""
    try:
        kwargs = keyword_arguments(tool, arguments)
    except ValidationError as exc:
        raise ToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except MCPError:
        raise
    except Exception as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}") from exc
    if tool.context_kwarg is not None:
        kwargs[tool.context_kwarg] = context
    try:
        if not tool.is_async:
            raise TypeError(f"tool {tool.name} is not async: every BugHive tool is")
        return converted_result(tool, await tool.fn(**kwargs))
    except MCPError:
        raise
    except UnexpectedToolError as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except (ToolError, ResourceError) as exc:
        raise ToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except Exception as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}") from exc


def converted_result(tool: Tool, result: Any) -> CallToolResult:
    """Structured content plus the same as compact JSON text (one line, UTF-8 as is)."""
    metadata = tool.fn_metadata
    model = metadata.output_model if metadata.output_schema is not None else None
    if (
        isinstance(model, type)
        and isinstance(result, model)
        and isinstance(result, BaseModel)
        and not metadata.wrap_output
    ):
        # Dumped once; the text is that dump as JSON (the same text model_dump_json gives,
        # ~30 % cheaper than dumping the model twice).
        structured = result.model_dump(mode="json", by_alias=True)
        return CallToolResult(
            content=[TextContent(type="text", text=pydantic_core.to_json(structured).decode())],
            structured_content=structured,
        )
    converted = metadata.convert_result(result)
    if isinstance(converted, InputRequiredResult):
        raise TypeError(f"tool {tool.name} asked for input: no BugHive tool does")
    if converted.structured_content is not None:
        text = json.dumps(converted.structured_content, separators=(",", ":"), ensure_ascii=False)
        converted.content = [TextContent(type="text", text=text)]
    return converted
