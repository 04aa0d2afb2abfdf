"""Text arguments stay text.

The SDK JSON-decodes string arguments of every parameter not annotated exactly ``str`` (some
clients send lists and objects as JSON text). For a parameter that accepts text but is not
plain ``str`` — ``str | None``, as most optional texts are — that turned a page titled "null"
into no title at all, and titles such as "true", "[1]" or "{}" into a type error. Text from a
website can be anything: for parameters that accept text, the string is kept as it was sent.
Lists and objects sent as JSON text are still decoded for every other parameter.

Results go out once: the SDK made an indented JSON text of every result and dumped it again
for the structured content (which BugHive then replaced by compact JSON — a third pass). For a
tool returning its declared pydantic model, the structured content and its compact text are
each dumped once, by pydantic's serializer (the three passes took about 25 ms of a
10,000-page ``bulk_create_pages`` answer).
"""

import functools
import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

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
def text_parameters(arg_model: type[BaseModel]) -> frozenset[str]:
    """The parameters of a tool's argument model that take text (once per tool, not per call)."""
    fields = arg_model.model_fields
    return frozenset(name for name, info in fields.items() if accepts_text(info.annotation))


class TextPreservingMetadata(FuncMetadata):
    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        text = text_parameters(self.arg_model)
        parsed = super().pre_parse_json(data)
        return {key: data[key] if key in text else value for key, value in parsed.items()}

    def convert_result(self, result: Any) -> CallToolResult | InputRequiredResult:
        """Structured content plus the same as compact JSON text (one line, UTF-8 as is)."""
        model = self.output_model if self.output_schema is not None else None
        if (
            isinstance(model, type)
            and isinstance(result, model)
            and isinstance(result, BaseModel)
            and not self.wrap_output
        ):
            return CallToolResult(
                content=[TextContent(type="text", text=result.model_dump_json(by_alias=True))],
                structured_content=result.model_dump(mode="json", by_alias=True),
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
