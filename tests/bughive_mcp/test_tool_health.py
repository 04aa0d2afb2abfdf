"""check_database_health: the operational tool."""

import pytest
from mcp import Client

from db.connection import schema_version
from tests.bughive_mcp.toolcalls import call_error, call_ok

pytestmark = pytest.mark.anyio


async def test_check_database_health_reports_a_reachable_database_at_the_newest_schema(
    client: Client,
) -> None:
    head = schema_version.head_revision()

    health = await call_ok(client, "check_database_health")

    assert health == {
        "healthy": True,
        "schema_revision": head,
        "expected_revision": head,
        "pool": health["pool"],
    }
    assert head is not None
    assert set(health["pool"]) == {"size", "checked_out", "idle", "overflow"}
    assert all(isinstance(n, int) and n >= 0 for n in health["pool"].values())


async def test_check_database_health_refuses_an_unknown_argument_naming_it(
    client: Client,
) -> None:
    message = await call_error(client, "check_database_health", verbose=True)

    assert "unknown argument(s) 'verbose'" in message
    assert "allowed arguments: none" in message
