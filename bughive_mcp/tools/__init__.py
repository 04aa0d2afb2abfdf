"""The tools, one module per entity. Importing this package fills ``registry.catalog``."""

from bughive_mcp.tools import bugs, finishing, health, pages, reporting, sessions
from bughive_mcp.tools.registry import ToolSpec, catalog

__all__ = ["ToolSpec", "bugs", "catalog", "finishing", "health", "pages", "reporting", "sessions"]
