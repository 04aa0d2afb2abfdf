"""Domain errors raised by the data layer.

Their messages are written for the caller (often an LLM agent): they name the thing, the value's
problem and what is allowed, and they never contain SQL, driver text or secrets. The MCP layer
maps them to tool errors in one place (``bughive_mcp/errors.py``).
"""

from collections.abc import Iterable


class DomainError(Exception):
    """Base class; ``str(err)`` is safe to show to any client."""


# The argument that carries each entity's id: named in a NotFound when the caller did not say
# which argument held the missing id, so every refusal names its field.
ID_FIELDS = {"crawl session": "session_id", "page": "page_id", "bug": "bug_id"}


class NotFound(DomainError):
    def __init__(self, entity: str, entity_id: object, field: str | None = None) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.field = field = field or ID_FIELDS.get(entity)
        where = f" (field '{field}')" if field else ""
        super().__init__(f"{entity} {entity_id} does not exist{where}")


class InvalidTransition(DomainError):
    """A status change that the entity's life cycle does not allow from its current status."""

    def __init__(
        self,
        entity: str,
        entity_id: object,
        action: str,
        current: str,
        allowed_from: Iterable[str],
    ) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.action = action
        self.current = current
        self.allowed_from = tuple(allowed_from)
        allowed = " or ".join(f"'{s}'" for s in self.allowed_from)
        super().__init__(
            f"cannot {action} {entity} {entity_id}: its status is '{current}', "
            f"but {action} is only allowed from {allowed}"
        )


class InvalidArgument(DomainError):
    """An argument that is well-typed but not acceptable (names the field and what is allowed)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"invalid '{field}': {message}")


class Conflict(DomainError):
    """The request contradicts the current state in a way no retry can fix by itself."""


class CounterLimit(Conflict):
    """An increment that would take a stored total past what its column can hold: refused by
    the statement itself, so nothing was changed."""

    def __init__(
        self,
        entity: str,
        entity_id: object,
        column: str,
        current: object,
        amount: object,
        limit: object,
    ) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.column = column
        self.limit = limit
        super().__init__(
            f"cannot add {amount} to the {column} of {entity} {entity_id}: it is {current}, and "
            f"{column} can hold at most {limit}; nothing was changed"
        )


class LeaseLost(Conflict):
    """A worker wrote to a page it no longer holds: fencing refused the write."""

    def __init__(self, page_id: object, detail: str) -> None:
        self.page_id = page_id
        super().__init__(
            f"lease lost on page {page_id}: {detail}; nothing was changed. Drop this page and "
            "claim new work (claim_pages_to_crawl)"
        )


class OutOfScope(DomainError):
    """A discovered URL that the session's crawl configuration excludes."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"not stored: {url} {reason} (field 'url')")


class DatabaseUnavailable(DomainError):
    """The database could not be reached or the connection was lost before the commit: the
    transaction did not happen, so the call may be retried as it is."""

    def __init__(
        self,
        detail: str = "database unavailable: the connection to the database failed or was lost",
    ) -> None:
        super().__init__(f"{detail}; nothing was changed, retry the call in a few seconds")


class DatabaseUnreachable(DomainError):
    """No connection to the database could be opened at start: the server is down or
    unreachable, or it refused the user, the password or the database name.

    For the operator's log, not for a tool client: it names the database's URL (password
    masked), what went wrong and the setting to change."""

    def __init__(self, safe_url: str, reason: str, *, waited_seconds: float = 0) -> None:
        self.reason = reason
        within = (
            f" within {waited_seconds:g} s (BUGHIVE_DB_CONNECT_RETRY_SECONDS)"
            if waited_seconds
            else ""
        )
        super().__init__(
            f"no connection to the database at {safe_url}{within}: {reason}; check "
            "DATABASE_URL, then run `bughive-mcp doctor`"
        )


class ServerBusy(DatabaseUnavailable):
    """Every pooled connection stayed in use for the whole ``pool_timeout``: nothing ran."""

    def __init__(self, connections: int, waited_seconds: float) -> None:
        super().__init__(
            f"server busy: all {connections} database connections stayed in use for "
            f"{waited_seconds:g} s"
        )


class CommitOutcomeUnknown(DatabaseUnavailable):
    """The connection was lost during the commit and the database could not be asked
    afterwards whether the transaction committed: the change may or may not have been saved."""

    def __init__(self) -> None:
        DomainError.__init__(
            self,
            "database unavailable: the connection was lost while the change was being committed, "
            "so it may or may not have been saved. Retry in a few seconds: idempotent calls are "
            "safe to repeat; for others, read the item back first",
        )


class StatementTimeout(DomainError):
    """A statement ran past ``statement_timeout`` and PostgreSQL cancelled it (with its
    transaction): nothing was changed."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        super().__init__(
            f"timed out: a database statement ran longer than the {timeout_ms} ms limit and was "
            "cancelled; nothing was changed. Retry later, or ask for less (e.g. a smaller limit)"
        )


class ConcurrentUpdate(DomainError):
    """PostgreSQL rolled the transaction back to resolve a conflict with a concurrent one (a
    deadlock, or a serialization failure): nothing was changed, and the same call succeeds
    when retried."""

    def __init__(self) -> None:
        super().__init__(
            "conflict: the call collided with a concurrent change to the same rows and was "
            "rolled back; nothing was changed, retry the call"
        )
