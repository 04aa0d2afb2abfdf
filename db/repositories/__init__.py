"""One repository per table, each over the caller's ``AsyncSession`` (the unit of work)."""

from db.repositories.bugs import BugRepository
from db.repositories.pages import PageRepository
from db.repositories.sessions import CrawlSessionRepository

__all__ = ["BugRepository", "CrawlSessionRepository", "PageRepository"]
