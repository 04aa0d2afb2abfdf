"""Pages of a crawl, one repository over three concerns, each in a module of its own:
discovery (:mod:`db.repositories.discovery`), the frontier with its leases
(:mod:`db.repositories.frontier`), and the reads (:mod:`db.repositories.page_reads`).

Counters live with the data: creating pages raises the session's ``pages_discovered`` by the
number of rows actually inserted, analysing a page raises ``pages_crawled`` — in the caller's
transaction, so they can never drift from the rows.
"""

from db.repositories.discovery import INSERT_CHUNK, MAX_BULK_PAGES, Progress
from db.repositories.finishing import PageFinishing
from db.repositories.frontier import (
    FINISH_PAGE,
    MAX_CLAIM,
    REMAINING_COUNT_CAP,
    claim_statement,
)
from db.repositories.leases import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    MAX_LEASE_SECONDS,
    fenced_refusal,
)
from db.repositories.page_reads import (
    MAX_GRAPH_NODES,
    PAGE_ANALYTICS,
    PageReads,
    frontier_page,
    frontier_page_statement,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "FINISH_PAGE",
    "INSERT_CHUNK",
    "MAX_BULK_PAGES",
    "MAX_CLAIM",
    "MAX_GRAPH_NODES",
    "MAX_LEASE_SECONDS",
    "PAGE_ANALYTICS",
    "REMAINING_COUNT_CAP",
    "PageRepository",
    "Progress",
    "claim_statement",
    "fenced_refusal",
    "frontier_page",
    "frontier_page_statement",
]


class PageRepository(PageFinishing, PageReads):
    """The seed's page repository: ``PageRepository(session).bulk_create(…)`` and the rest."""
