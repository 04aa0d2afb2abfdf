"""Which tenant a tool call works for (multi-tenant mode; the database side is ``db.connection.tenancy``).

The tenant comes from the authenticated principal, never from a tool argument: over HTTP from
the bearer token (``BUGHIVE_TENANT_TOKENS``: each token acts as its tenant), on stdio from
``BUGHIVE_TENANT``. The HTTP middleware puts the request's tenant in :data:`current_tenant`;
the SDK carries each message's context variables to the handler that serves it, and
``in_unit_of_work`` binds the transaction to the tenant. In multi-tenant mode a call that has no
tenant is refused before it reaches the database (where it would see no rows anyway).
"""

import hmac
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from pydantic import SecretStr

from db.connection import schema_version
from db.connection.database import Database
from db.connection.tenancy import check_tenant, row_security
from db.errors import DomainError

MIN_TOKEN_LENGTH = 16
Principal = TypeVar("Principal")

current_tenant: ContextVar[str | None] = ContextVar("bughive_tenant", default=None)


class TenantRequired(DomainError):
    def __init__(self) -> None:
        super().__init__(
            "this server is in multi-tenant mode and the request is bound to no tenant: "
            "authenticate with your tenant's bearer token"
        )


@dataclass(frozen=True)
class TenantToken:
    """One bearer token and the tenant it acts as (the token never shows in ``repr``)."""

    tenant: str
    token: SecretStr


def parse_tenant_tokens(raw: str) -> list[TenantToken]:
    """``"acme:<token>,globex:<token>"`` → tenant tokens. A tenant may have several tokens (to
    rotate them); a token may belong to one tenant only. Error messages never quote a token."""
    entries: list[TenantToken] = []
    for number, part in enumerate((p.strip() for p in raw.split(",")), start=1):
        if not part:
            continue
        tenant, sep, token = part.partition(":")
        if not sep:
            raise ValueError(f"entry {number} is not tenant:token")
        try:
            check_tenant(tenant.strip())
        except ValueError as exc:
            raise ValueError(f"entry {number}: {exc}") from None
        if len(token.strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"entry {number}: the token must be at least {MIN_TOKEN_LENGTH} characters "
                "(use a long random string)"
            )
        entries.append(TenantToken(tenant.strip(), SecretStr(token.strip())))
    tokens = [e.token.get_secret_value() for e in entries]
    if len(set(tokens)) != len(tokens):
        raise ValueError("the same token is given more than once")
    return entries


def match_token(
    presented: str, principals: Iterable[tuple[bytes, Principal]]
) -> tuple[bool, Principal | None]:
    """(authenticated, principal) for a presented bearer token, the principal being what the
    caller keeps beside each token (its tenant, …). Compares against every token in constant
    time, without stopping at the first match, so timing reveals neither which token matched
    nor how many there are before it."""
    given = presented.encode()
    found, principal = False, None
    for token, token_principal in principals:
        if hmac.compare_digest(given, token):
            found, principal = True, token_principal
    return found, principal


def request_tenant(default: str | None, multi_tenant: bool) -> str | None:
    """The tenant of the current call: the HTTP principal's, else ``default`` (``BUGHIVE_TENANT``).
    In multi-tenant mode, no tenant is an error rather than an unscoped transaction."""
    tenant = current_tenant.get() or default
    if tenant is None and multi_tenant:
        raise TenantRequired()
    return tenant


class UnsafeTenancy(DomainError):
    """Multi-tenant mode on a database that would not keep tenants apart: refuse to serve.
    (A domain error, so the command line reports it as one clear line, not a traceback.)"""


async def check_multi_tenant_database(db: Database) -> None:
    """Before serving in multi-tenant mode: the schema is at the newest revision (the server
    does not migrate it: its role may not), and the server's role is bound by the policies."""
    revision, head = await db.schema_revision(), schema_version.head_revision()
    if revision != head:
        raise UnsafeTenancy(
            f"multi-tenant mode: the schema is at revision {revision}, not {head}; run "
            "`bughive-mcp migrate` with the tables' owner's DATABASE_URL first"
        )
    security = await row_security(db.engine)
    if not security.enforced:
        raise UnsafeTenancy(
            "multi-tenant mode needs a database role bound by row-level security, but "
            + "; ".join(security.problems)
            + ". Connect as the runtime role (see README, Multi-tenant mode)"
        )
