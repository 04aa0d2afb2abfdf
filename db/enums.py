"""The vocabularies of the data model.

Each is a ``StrEnum`` in Python and a CHECK constraint in PostgreSQL (see ``db.models``), so a
bad value is refused by both and never reaches a row.
"""

from enum import StrEnum


class SessionStatus(StrEnum):
    """Life cycle: pending → running → completed | failed."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class PageStatus(StrEnum):
    """Life cycle: discovered → crawling → analyzed | error."""

    DISCOVERED = "discovered"
    CRAWLING = "crawling"
    ANALYZED = "analyzed"
    ERROR = "error"


class BugCategory(StrEnum):
    UI_UX = "ui_ux"
    DATA = "data"
    EDGE_CASE = "edge_case"
    PERFORMANCE = "performance"
    SECURITY = "security"


class BugPriority(StrEnum):
    """Ordered from most to least urgent; ``rank`` gives that order for sorting."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return list(BugPriority).index(self)


class BugStatus(StrEnum):
    """Life cycle: detected → validated → reported; any state → dismissed."""

    DETECTED = "detected"
    VALIDATED = "validated"
    REPORTED = "reported"
    DISMISSED = "dismissed"


class EvidenceType(StrEnum):
    SCREENSHOT = "screenshot"
    CONSOLE_LOG = "console_log"
    NETWORK = "network"
    DOM = "dom"
    VIDEO = "video"
    PERFORMANCE = "performance"
    OTHER = "other"
