"""Keeps ``tools/list`` small: agents pay for every schema character in context.

Pydantic's JSON schemas carry a ``title`` on every property and spell nullable fields as
``anyOf: [{type: X}, {type: null}]``. Neither tells an agent anything the property name does
not, so input schemas are rewritten without them (descriptions, bounds and enums stay: they are
how the agent learns what to send), nor a ``null`` default (absent means null), nor
``format`` (the description says what an id is), nor the docstrings of nested models.

Output schemas are the larger cost (one full entity schema per tool, ~1-2 KB each, ~40 KB in
all): by default each is ``{"type": "object"}`` and the description says what comes back;
``BUGHIVE_OUTPUT_SCHEMAS=full`` restores the complete schemas for clients that generate types.
"""

from typing import Any

NULL = {"type": "null"}


def compact_schema(schema: dict[str, Any], *, keep_docs: bool) -> dict[str, Any]:
    inlined = _inline_enums(schema)
    return _compact(inlined, keep_docs=keep_docs, is_properties=False, nested=False)  # type: ignore[no-any-return]


def _inline_enums(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$ref``s to enum definitions by the enum itself (``{type, enum}``): shorter than
    a definition plus references, and one hop less for the reader."""
    defs = schema.get("$defs", {})
    enums = {
        f"#/$defs/{name}": {"type": d["type"], "enum": d["enum"]}
        for name, d in defs.items()
        if "enum" in d and "type" in d
    }
    if not enums:
        return schema

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in enums:
            return {**enums[ref], **{k: walk(v) for k, v in node.items() if k != "$ref"}}
        return {k: walk(v) for k, v in node.items()}

    out = walk({k: v for k, v in schema.items() if k != "$defs"})
    remaining = {n: walk(d) for n, d in defs.items() if f"#/$defs/{n}" not in enums}
    if remaining:
        out["$defs"] = remaining
    return out  # type: ignore[no-any-return]


def _compact(node: Any, *, keep_docs: bool, is_properties: bool, nested: bool = True) -> Any:
    if isinstance(node, list):
        return [_compact(item, keep_docs=keep_docs, is_properties=False) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not is_properties:
            if key == "title" or (key == "default" and value is None) or key == "format":
                continue
            if not keep_docs and key in ("description", "format", "default"):
                continue
            if key == "description" and "properties" in node and "type" in node and nested:
                continue  # a nested model's docstring: its fields say it better
        child_is_properties = key in ("properties", "$defs") and not is_properties
        out[key] = _compact(value, keep_docs=keep_docs, is_properties=child_is_properties)
    if not is_properties:
        _merge_nullable(out)
    return out


def _merge_nullable(node: dict[str, Any]) -> None:
    """``anyOf: [{type: T, …}, {type: null}]`` → ``{type: [T, null], …}`` when T is simple."""
    options = node.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or NULL not in options:
        return
    other = options[0] if options[1] == NULL else options[1]
    if not isinstance(other, dict) or not isinstance(other.get("type"), str):
        return
    if "enum" in other:
        other = {**other, "enum": [*other["enum"], None]}
    del node["anyOf"]
    node.update({**other, "type": [other["type"], "null"]})


def minimal_output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Just ``{"type": "object"}``: the default, because output schemas cost every agent
    context on every ``tools/list`` while models read the result itself, not its schema.
    Typed clients set ``BUGHIVE_OUTPUT_SCHEMAS=full`` to get the complete pydantic schemas."""
    return {"type": "object"}
