"""bughive_mcp.arguments decodes JSON text sent for non-text parameters exactly as the SDK
does — it only skips the SDK's attempt to parse every UUID, enum and number string."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver.tools import Tool

from bughive_mcp.arguments import decoded_arguments

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
padding = st.sampled_from(["", " ", "\n", "\t ", "\u00a0"])
candidates = (
    st.text(max_size=12)
    | json_values.map(json.dumps)
    | st.tuples(padding, json_values.map(json.dumps), padding).map("".join)
    | st.sampled_from(["null", " null ", "true", "[1,", "{}", "[]", "1e999", "-0", "NaN"])
)


def takes_a_list(items: list[int] | None = None, note: str | None = None) -> None:
    """A tool with a parameter that does not take text and one that does."""


# The SDK's own argument handling of the tool (what Tool.run would do), and BugHive's.
SDK = Tool.from_function(takes_a_list).fn_metadata


def ours(arguments: dict[str, Any]) -> dict[str, Any]:
    return decoded_arguments(SDK.arg_model, arguments)


@settings(max_examples=500, deadline=None)
@given(candidates)
def test_json_text_of_a_non_text_parameter_is_decoded_as_the_sdk_decodes_it(raw: str) -> None:
    expected: Any = SDK.pre_parse_json({"items": raw})["items"]
    assert ours({"items": raw})["items"] == expected


@settings(max_examples=200, deadline=None)
@given(candidates)
def test_text_parameters_keep_the_text_as_sent(raw: str) -> None:
    assert ours({"note": raw, "unknown": raw}) == {"note": raw, "unknown": raw}


def test_a_list_sent_as_json_text_arrives_as_a_list() -> None:
    assert ours({"items": " [1, 2] "}) == {"items": [1, 2]}
    assert ours({"items": "null"}) == {"items": None}
    assert ours({"items": "5"}) == {"items": "5"}
