"""What the server sets up for its whole life when it starts."""

import gc

from mcp import Client

from bughive_mcp import state


async def test_objects_alive_at_start_are_kept_out_of_full_collections(client: Client) -> None:
    """Start-up objects live as long as the server: full garbage collections skip them."""
    assert state._startup_frozen
    assert gc.get_freeze_count() > 1_000
    assert (await client.call_tool("check_database_health", {})).is_error is False
