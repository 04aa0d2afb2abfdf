"""BugHive MCP: the MCP surface over the data layer (knows tools, knows nothing of SQL)."""

from bughive_mcp.server import build_server

__all__ = ["build_server"]
