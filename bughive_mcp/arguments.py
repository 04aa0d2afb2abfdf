"""Text arguments stay text.

The SDK JSON-decodes string arguments of every parameter not annotated exactly ``str`` (some
clients send lists and objects as JSON text). For a parameter that accepts text but is not
plain ``str`` — ``str | None``, as most optional texts are — that turned a page titled "null"
into no title at all, and titles such as "true", "[1]" or "{}" into a type error. Text from a
website can be anything: for parameters that accept text, the string is kept as it was sent.
Lists and objects sent as JSON text are still decoded for every other parameter.

Results go out once: the SDK made an indented JSON text of every result and dumped it again
for the structured content (which BugHive then replaced by compact JSON — a third pass). For a
tool returning its declared pydantic model, the model is dumped once, by pydantic's serializer,
and that dump is both the structured content and (as compact JSON) the text (the three passes
took about 25 ms of a 10,000-page ``bulk_create_pages`` answer).
"""

import functools
import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic_core
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel


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


class TextPreservingMetadata(FuncMetadata):
    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        decoded = decoded_parameters(self.arg_model)
        return {
            key: decode_json_text(value) if key in decoded and isinstance(value, str) else value
            for key, value in data.items()
        }

    def convert_result(self, result: Any) -> CallToolResult | InputRequiredResult:
        """Structured content plus the same as compact JSON text (one line, UTF-8 as is)."""
        model = self.output_model if self.output_schema is not None else None
        if (
            isinstance(model, type)
            and isinstance(result, model)
            and isinstance(result, BaseModel)
            and not self.wrap_output
        ):
            # Dumped once; the text is that dump as JSON (the same text model_dump_json gives,
            # ~30 % cheaper than dumping the model twice).
            structured = result.model_dump(mode="json", by_alias=True)
            return CallToolResult(
                content=[TextContent(type="text", text=pydantic_core.to_json(structured).decode())],
                structured_content=structured,
            )
        converted = super().convert_result(result)
        if isinstance(converted, CallToolResult) and converted.structured_content is not None:
            text = json.dumps(
                converted.structured_content, separators=(",", ":"), ensure_ascii=False
            )
            converted.content = [TextContent(type="text", text=text)]
        return converted


def keep_text_arguments(tool: Tool) -> None:
    """Give ``tool`` the argument handling above (call before changing its schemas)."""
    meta = tool.fn_metadata
    tool.fn_metadata = TextPreservingMetadata(
        arg_model=meta.arg_model,
        output_schema=meta.output_schema,
        output_model=meta.output_model,
        wrap_output=meta.wrap_output,
    )
