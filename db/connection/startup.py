"""Waiting for the database at start.

A server started before its database (a host reboot, a container started first) used to die
on its first connection. :func:`wait_until_reachable` retries instead, with exponential backoff,
for ``BUGHIVE_DB_CONNECT_RETRY_SECONDS`` — but only failures that waiting can cure (refused,
timed out, the server starting up); a wrong password or a missing database is reported at once.
Either way the end is one :class:`DatabaseUnreachable`, whose message says what failed, where
(the URL with its password masked) and what to change: no driver text, no traceback.
"""

import errno
import logging
import socket
import time
from collections.abc import Callable

import anyio
from sqlalchemy import text

from db.connection.database import Database, _causes, _is_unavailable, _sqlstate
from db.errors import DatabaseUnreachable

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.25
LONGEST_DELAY_SECONDS = 5.0


def connect_failure(err: BaseException, db: Database) -> tuple[str, bool]:
    """Why ``db`` could not be connected to, in words for the operator, and whether waiting
    may help. Composed from the SQLSTATE and the exception types, never from the driver's text
    (so it cannot carry the password)."""
    user, database = db.url.username, db.url.database
    state = _sqlstate(err)
    if state == "28P01":
        return f"password authentication failed for user '{user}' (fix the password)", False
    if state.startswith("28"):
        return (
            f"user '{user}' may not connect (no such role, or no pg_hba.conf entry for it)",
            False,
        )
    if state == "3D000":
        return f"database '{database}' does not exist (create it, or fix the name)", False
    if state == "57P03":
        return "PostgreSQL is starting up", True
    if state.startswith("57P"):
        return "PostgreSQL is shutting down", True
    if state == "53300":
        return "PostgreSQL has no connection slot left (too many connections)", True
    for cause in _causes(err):
        if isinstance(cause, socket.gaierror):
            return f"host name '{db.url.host}' does not resolve", True
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is PostgreSQL running, and listening there?)", True
        if isinstance(cause, TimeoutError):
            return (
                f"no answer within {db.config.connect_timeout:g} s (BUGHIVE_DB_CONNECT_TIMEOUT)",
                True,
            )
        if isinstance(cause, FileNotFoundError):
            return "no PostgreSQL socket there (is PostgreSQL running?)", True
        if isinstance(cause, OSError):
            name = errno.errorcode.get(cause.errno or 0, type(cause).__name__)
            return f"network error ({name})", True
    if _is_unavailable(err):
        return "the connection failed", True
    return f"unexpected error ({type(err).__name__})", False


async def _connect(db: Database) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def wait_until_reachable(
    db: Database, *, on_retry: Callable[[str], None] | None = None
) -> None:
    """Returns once a connection to ``db`` opens; retries failures that waiting may cure, for
    up to ``connect_retry_seconds`` (doubling the pause from 0.25 s to at most 5 s), telling
    ``on_retry`` why it waits. Raises :class:`DatabaseUnreachable` when it gives up."""
    bound = db.config.connect_retry_seconds
    safe_url = db.url.render_as_string(hide_password=True)
    started = time.monotonic()
    delay = FIRST_DELAY_SECONDS
    retried = False
    while True:
        try:
            await _connect(db)
        except Exception as err:
            reason, transient = connect_failure(err, db)
            left = bound - (time.monotonic() - started)
            if not transient:
                raise DatabaseUnreachable(safe_url, reason) from err
            if left <= 0:
                raise DatabaseUnreachable(safe_url, reason, waited_seconds=bound) from err
            waiting = f"the database is not reachable yet: {reason}; retrying"
            if on_retry is not None:
                on_retry(waiting)
            if not retried:
                log.warning(
                    "%s for up to %g s (BUGHIVE_DB_CONNECT_RETRY_SECONDS), at %s",
                    waiting,
                    bound,
                    safe_url,
                )
                retried = True
            else:
                log.debug("%s in %.2f s", waiting, min(delay, left))
            await anyio.sleep(min(delay, left))
            delay = min(delay * 2, LONGEST_DELAY_SECONDS)
            continue
        if retried:
            log.info("the database is reachable after %.1f s", time.monotonic() - started)
        return
