"""How tools are declared: each tools module lists its functions with a title, a toolset and
honest annotations; ``bughive_mcp.server`` registers them. Keeping the declaration next to the
function makes the public contract (name, hints, schema) reviewable in one place."""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mcp.types import ToolAnnotations

Toolset = Literal["sessions", "frontier", "bugs", "reporting"]
TOOLSETS: tuple[Toolset, ...] = ("sessions", "frontier", "bugs", "reporting")


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    title: str
    toolset: Toolset
    annotations: ToolAnnotations

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def description(self) -> str:
        """The docstring as one paragraph: what the agent reads, without source indentation."""
        return " ".join(inspect.cleandoc(self.fn.__doc__ or "").split())

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)


class ToolCatalog:
    """An ordered list of tool specs, filled by the ``tool`` decorator of each module."""

    def __init__(self) -> None:
        self.specs: list[ToolSpec] = []
        self._read_only: set[str] = set()  # names of the read-only specs, kept by register

    def is_read_only(self, name: str) -> bool:
        """Whether the tool ``name`` is annotated read-only (asked on every call: a set)."""
        return name in self._read_only

    def tool(
        self,
        title: str,
        *,
        toolset: Toolset,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        annotations = ToolAnnotations(
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=idempotent or read_only,
            open_world_hint=False,
        )

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            spec = ToolSpec(fn=fn, title=title, toolset=toolset, annotations=annotations)
            self.specs.append(spec)
            if spec.read_only:
                self._read_only.add(spec.name)
            return fn

        return register


catalog = ToolCatalog()
tool = catalog.tool
