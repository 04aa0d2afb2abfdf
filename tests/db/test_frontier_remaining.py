"""A claim's ``remaining`` is a bounded count: exact below the cap, the cap above it, so a claim
costs the same on a frontier of 10,000 pages as on one of 1,000,000 (bench workload 5)."""

from db.connection.database import Database
from db.repositories.pages import REMAINING_COUNT_CAP
from tests.db.test_frontier import claim, seed_pages


async def test_remaining_stops_counting_at_the_cap_on_a_large_frontier(db: Database) -> None:
    session_id = await seed_pages(db, REMAINING_COUNT_CAP + 20)

    result = await claim(db, session_id, limit=10)

    assert len(result.items) == 10
    assert result.remaining == REMAINING_COUNT_CAP
