"""One repository per table, each over the caller's unit of work (:mod:`db.connection.unit_of_work`).

Each repository method declares how it runs (``@reads``, ``@single_write``, ``@writes``) and
sends only registered statements (:mod:`db.repositories.statements`).

**Lock order.** Every write takes its locks in this order, so two writes can wait for each
other but never in a cycle (a deadlock):

1. the session's *discovery turn* (an advisory transaction lock, discovery only);
2. pages (claims, finishing, errors, a completion's stopped pages, new pages through the
   unique ``(url, session_id)`` index);
3. bugs, then their occurrences (``create_bug``);
4. the ``crawl_sessions`` row, **last**: its counters (``pages_discovered``, ``pages_crawled``,
   ``bugs_found``, ``total_cost``) and status changes. After it, a write touches only rows it
   has locked already or has just inserted, which no other transaction can see or wait for:
   ``create_bug`` raises ``bugs_found`` in the statement that files the bug, then inserts the
   occurrence and bumps that same bug's count.

Foreign-key checks take ``KEY SHARE`` locks on parent rows, which conflict with none of these
updates (none changes a key). Reads lock nothing. A new write statement takes its place in
this order; ``tests/db/test_lock_order.py`` and ``tests/bughive_mcp/test_write_pairs.py`` run
the writes against each other on the same rows.
"""

from db.repositories.bugs import BugRepository
from db.repositories.pages import PageRepository
from db.repositories.sessions import CrawlSessionRepository

__all__ = ["BugRepository", "CrawlSessionRepository", "PageRepository"]
