"""A page's lease, spelled once: how long one may be, and the SQL that grants and ends one.

A page has a lease if and only if it is ``crawling`` (CHECK ``lease_iff_crawling``): a claim
or ``mark_crawling`` grants it (:data:`LEASE_GRANTED`), finishing the page, giving up on it
or ending the session ends it (:data:`LEASE_ENDED`). Every statement that does either uses
these fragments, so the rule cannot drift between them.
"""

import uuid
from collections.abc import Mapping
from typing import Any

from db.enums import PageStatus
from db.errors import ConcurrentUpdate, Conflict, DomainError, InvalidArgument, LeaseLost
from db.repositories.statements import Statement

MIN_LEASE_SECONDS = 5
MAX_LEASE_SECONDS = 24 * 3600
DEFAULT_LEASE_SECONDS = 300
DEFAULT_MAX_ATTEMPTS = 3


def lease_granted(token: str) -> str:
    """The SET list that leases a page for ``:lease_seconds`` under the claim token ``token``
    (an SQL expression)."""
    return f"""status = '{PageStatus.CRAWLING.value}', claim_token = {token},
        claimed_at = now(), lease_expires_at = now() + :lease_seconds * interval '1 second',
        attempts = attempts + 1"""


# One page leased under a fresh token (mark_crawling).
LEASE_GRANTED = lease_granted("gen_random_uuid()")
# The pages of one claim leased under one token, drawn once per statement by the claim's
# ``token`` CTE: a worker holds them together, and one token in the answer instead of one per
# page is ~50 bytes less of an agent's context per page. Fencing is unchanged: a page leased
# again goes to a new claim with a new token, so an old token never matches it again.
CLAIM_LEASE_GRANTED = lease_granted("(SELECT value FROM token)")
# The SET list that ends a page's lease (with its new status, set beside it).
LEASE_ENDED = "claim_token = NULL, lease_expires_at = NULL"
# The WHERE condition of a write fenced by ``:claim_token``: it matches only while that token
# holds the page, so a worker whose lease expired (and went to another) changes nothing.
HELD_BY_TOKEN = f"status = '{PageStatus.CRAWLING.value}' AND claim_token = :claim_token"


def check_lease(seconds: int) -> int:
    """``seconds`` if it is a lease length the frontier accepts; InvalidArgument otherwise."""
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise InvalidArgument(
            "lease_seconds",
            f"must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}, got {seconds}",
        )
    return seconds


# What a refused fenced write needs to say why (no row: no such page).
LEASE_OF_PAGE = Statement(
    "pages lease",
    "SELECT status, claim_token, attempts, lease_expires_at > now() AS live FROM pages "
    "WHERE id = :id",
    writes=False,
)


def fenced_refusal(
    page_id: uuid.UUID, claim_token: uuid.UUID, lease: Mapping[str, Any]
) -> DomainError:
    """The error for a write with ``claim_token`` that did not match ``page_id`` now, from
    the page's ``lease`` (:data:`LEASE_OF_PAGE`). Tokens of earlier claims are not kept, so a
    token that is not the current one is told apart only by the page's history: claimed once
    — it was never the page's token; claimed again — it may be from an earlier claim, whose
    lease expired."""
    status = PageStatus(lease["status"])
    if status == PageStatus.ANALYZED:
        return Conflict(
            f"page {page_id} is already analyzed, so the claim_token holds nothing now; nothing "
            "was changed, and nothing more is needed for this page"
        )
    if status == PageStatus.ERROR:
        return Conflict(
            f"page {page_id} is already finished with status '{PageStatus.ERROR.value}', so the "
            "claim_token holds nothing now; nothing was changed. Drop this page and claim new "
            "work (claim_pages_to_crawl)"
        )
    if status == PageStatus.DISCOVERED:
        return InvalidArgument(
            "claim_token",
            f"page {page_id} is not claimed (status '{PageStatus.DISCOVERED.value}'), so no "
            "claim_token holds it; nothing was changed. Get work with claim_pages_to_crawl",
        )
    if lease["claim_token"] == claim_token:  # matched by the time of the read: it raced
        return ConcurrentUpdate()
    if lease["attempts"] <= 1:
        return InvalidArgument(
            "claim_token",
            f"it is not the claim token of page {page_id}, which has been claimed once, under "
            "another token; nothing was changed. Pass the claim_token your claim returned for "
            "this page",
        )
    current = "holds it now" if lease["live"] else "has expired too"
    return LeaseLost(
        page_id,
        "the claim_token is not its current one: after an earlier lease expired, the page was "
        f"claimed again (claim {lease['attempts']} {current}), so a token from an earlier claim "
        "no longer counts",
    )
