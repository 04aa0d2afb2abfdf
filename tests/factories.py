"""Small builders for test data, going through the repositories like real callers do."""

import uuid
from typing import Any

from db.bug_schemas import BugFiled
from db.connection.database import Database
from db.page_schemas import PageCreated
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from db.schemas import CrawlSessionPublic


async def make_session(
    db: Database, base_url: str = "https://shop.example", *, start: bool = True, **config: Any
) -> CrawlSessionPublic:
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        created = await repo.create_session(base_url, config)
        return await repo.start_session(created.id) if start else created


async def make_page(
    db: Database,
    session_id: uuid.UUID,
    url: str = "https://shop.example/",
    depth: int = 0,
    parent_page_id: uuid.UUID | None = None,
) -> PageCreated:
    async with db.session() as s:
        return await PageRepository(s).create_page(session_id, url, depth, parent_page_id)


async def make_bug(
    db: Database, session_id: uuid.UUID, page_id: uuid.UUID, **overrides: Any
) -> BugFiled:
    fields: dict[str, Any] = {
        "category": "ui_ux",
        "priority": "high",
        "title": "Button overlaps text",
        "description": "On mobile viewports the buy button covers the price.",
        "steps_to_reproduce": ["Open /products on a 375px viewport"],
        "evidence": [{"type": "screenshot", "url": "https://cdn.example/s.png"}],
        "confidence": 0.9,
    }
    fields.update(overrides)
    async with db.session() as s:
        return await BugRepository(s).create_bug(session_id, page_id, **fields)
