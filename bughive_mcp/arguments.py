"""Text arguments stay text.

The SDK JSON-decodes string arguments of every parameter not annotated exactly ``str`` (some
clients send lists and objects as JSON text). For a parameter that accepts text but is not
plain ``str`` — ``str | None``, as most optional texts are — that turned a page titled "null"
into no title at all, and titles such as "true", "[1]" or "{}" into a type error. Text from a
website can be anything: for parameters that accept text, the string is kept as it was sent.
Lists and objects sent as JSON text are still decoded for every other parameter.
"""

import types
from typing import Annotated, Any, Union, get_args, get_origin

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata


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


class TextPreservingMetadata(FuncMetadata):
    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = self.arg_model.model_fields
        text = {name for name, info in fields.items() if accepts_text(info.annotation)}
        parsed = super().pre_parse_json(data)
        return {key: data[key] if key in text else value for key, value in parsed.items()}


def keep_text_arguments(tool: Tool) -> None:
    """Give ``tool`` the argument handling above (call before changing its schemas)."""
    meta = tool.fn_metadata
    tool.fn_metadata = TextPreservingMetadata(
        arg_model=meta.arg_model,
        output_schema=meta.output_schema,
        output_model=meta.output_model,
        wrap_output=meta.wrap_output,
    )
