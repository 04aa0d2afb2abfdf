"""Which tools a server exposes: toolsets, explicit tools, exclusions and read-only mode.

Precedence (highest first), the same as GitHub's MCP server:

1. ``read_only`` — only tools annotated read-only survive, whatever else was asked for;
2. ``exclude_tools`` — removed even if a toolset or ``tools`` named them;
3. ``tools`` — added on top of the chosen toolsets (alone, they are the whole selection);
4. ``toolsets`` — default ``all`` when neither toolsets nor tools are given.

A hidden tool is not listed, and calling it is refused with the reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from bughive_mcp.tools.registry import TOOLSETS, ToolSpec


class ToolSelectionError(ValueError):
    """A setting names a toolset or tool that does not exist."""


@dataclass(frozen=True)
class ToolSelection:
    enabled: list[ToolSpec]
    hidden: dict[str, str]  # tool name → why it is not available


def select_tools(
    specs: Sequence[ToolSpec],
    *,
    toolsets: Sequence[str] | None = None,
    tools: Sequence[str] | None = None,
    exclude_tools: Sequence[str] = (),
    read_only: bool = False,
) -> ToolSelection:
    names = {s.name for s in specs}
    for name in [*(tools or ()), *exclude_tools]:
        if name not in names:
            raise ToolSelectionError(
                f"unknown tool {name!r}; known tools: {', '.join(sorted(names))}"
            )
    if toolsets is None:
        chosen_sets: set[str] = set() if tools else set(TOOLSETS)
    else:
        chosen_sets = set()
        for toolset in toolsets:
            if toolset == "all":
                chosen_sets.update(TOOLSETS)
            elif toolset in TOOLSETS:
                chosen_sets.add(toolset)
            else:
                raise ToolSelectionError(
                    f"unknown toolset {toolset!r}; choose from: all, {', '.join(TOOLSETS)}"
                )
    enabled: list[ToolSpec] = []
    hidden: dict[str, str] = {}
    for spec in specs:
        if read_only and not spec.read_only:
            hidden[spec.name] = "the server runs in read-only mode and this tool writes"
        elif spec.name in exclude_tools:
            hidden[spec.name] = "it is excluded by the server's exclude_tools setting"
        elif spec.toolset in chosen_sets or spec.name in (tools or ()):
            enabled.append(spec)
        else:
            sets = ", ".join(sorted(chosen_sets)) or "none"
            hidden[spec.name] = (
                f"its toolset '{spec.toolset}' is not enabled (enabled toolsets: {sets})"
            )
    return ToolSelection(enabled=enabled, hidden=hidden)
