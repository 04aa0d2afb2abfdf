"""Operational tool: is the database there?"""

from pydantic import BaseModel, Field

from bughive_mcp.state import AppContext, database
from bughive_mcp.tools.registry import tool
from db.connection import schema_version


class DatabaseHealth(BaseModel):
    healthy: bool = Field(description="True when a round trip to PostgreSQL succeeded.")
    schema_revision: str | None
    expected_revision: str | None
    pool: dict[str, int] = Field(description="Connections checked out, idle and overflow.")


@tool("Check database health", toolset="reporting", read_only=True)
async def check_database_health(ctx: AppContext) -> DatabaseHealth:
    """Check that the database answers and its schema is current. Use when other tools
    report the database as unavailable."""
    db = database(ctx)
    healthy = await db.check_health()
    revision = await db.schema_revision() if healthy else None
    return DatabaseHealth(
        healthy=healthy,
        schema_revision=revision,
        expected_revision=schema_version.head_revision(),
        pool=db.pool_status(),
    )
