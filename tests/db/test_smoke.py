from db.database import Database
from tests.factories import make_bug, make_page, make_session


async def test_session_page_bug_round_trip(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    bug = await make_bug(db, session.id, page.id)
    assert bug.session_id == session.id
