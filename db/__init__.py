"""BugHive's data layer: models, the pooled ``Database`` and one repository per table."""

from db.connection.config import DatabaseConfig
from db.connection.database import (
    Database,
    check_database_health,
    close_database,
    get_database,
    get_db,
    init_database,
)
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository

__all__ = [
    "BugRepository",
    "CrawlSessionRepository",
    "Database",
    "DatabaseConfig",
    "PageRepository",
    "check_database_health",
    "close_database",
    "get_database",
    "get_db",
    "init_database",
]
