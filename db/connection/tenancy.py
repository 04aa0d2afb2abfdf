"""Multi-tenant mode: row-level security keyed by a per-transaction setting.

Every tenant table has a ``tenant`` column that the database fills from the transaction's
``bughive.tenant`` setting (revision 0003), and a ``tenant_isolation`` policy (revision 0004)
that shows and accepts only the rows of that tenant. The policy applies to every role that does
not own the tables (superusers and ``BYPASSRLS`` roles excepted), so:

- single-tenant deployments connect as the owner: policies do not apply, nothing changes;
- multi-tenant deployments connect the server as a *runtime role* (not owner, not superuser,
  no ``BYPASSRLS``) holding the grants of :func:`runtime_grants`, and bind each unit of work to
  a tenant with :data:`BIND_TENANT_SQL` — ``set_config(…, true)``, i.e. ``SET LOCAL`` with a bound
  parameter: it ends with the transaction, so it can never bleed into the next user of a pooled
  connection (and works behind PgBouncer's transaction pooling).

A transaction bound to no tenant sees no rows and can write none (fail-closed). The policies
trust the setting, and any session of the runtime role may set it to any tenant: the role's
password is a key to every tenant's rows (README, *Multi-tenant mode*).
"""

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.rules.secrets import STORED_CREDENTIALS

TENANT_SETTING = "bughive.tenant"
TENANT_TABLES = ("crawl_sessions", "pages", "bugs", "bug_occurrences")
POLICY_NAME = "tenant_isolation"
# What the runtime role may do; no tool deletes rows, so DELETE is not granted.
RUNTIME_PRIVILEGES = "SELECT, INSERT, UPDATE"

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

BIND_TENANT_SQL = "SELECT set_config('bughive.tenant', $1, true)"


def check_tenant(tenant: str) -> str:
    """A tenant name: 1 to 100 of letters, digits, ``_ . -`` (not starting with a symbol)."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(
            "a tenant name is 1 to 100 characters: letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return tenant


def bind_tenant_statement(tenant: str) -> tuple[str, tuple[str]]:
    """The statement (SQL, arguments) that binds a transaction to ``tenant`` until it commits
    or rolls back: the first of every transaction of a tenant's unit of work."""
    return BIND_TENANT_SQL, (check_tenant(tenant),)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def runtime_grants(role: str, schema: str = "public") -> list[str]:
    """The statements (run by the tables' owner) that let ``role`` serve in multi-tenant mode."""
    who, where = quote_identifier(role), quote_identifier(schema)
    tables = ", ".join(f"{where}.{table}" for table in TENANT_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
        f"GRANT {RUNTIME_PRIVILEGES} ON {tables} TO {who}",
        f"GRANT SELECT ON {where}.alembic_version TO {who}",
        # The start-up credentials check, which the policies would blind (revision 0006).
        f"GRANT EXECUTE ON FUNCTION {where}.{STORED_CREDENTIALS} TO {who}",
    ]


async def grant_runtime_role(conn: AsyncConnection, role: str) -> list[str]:
    """Run :func:`runtime_grants` for ``role`` in the connection's current schema; returns them."""
    schema = await conn.scalar(text("SELECT current_schema()"))
    statements = runtime_grants(role, str(schema or "public"))
    for statement in statements:
        await conn.execute(text(statement))
    return statements


@dataclass(frozen=True)
class RowSecurity:
    """Whether the connected role is subject to the tenant policies, and why not if it is not."""

    role: str
    problems: tuple[str, ...]

    @property
    def enforced(self) -> bool:
        return not self.problems


ROLE_FACTS = text(
    """
    SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
           array(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = current_schema()::regnamespace
                   AND c.relname = ANY(:tables)
                   AND pg_has_role(r.oid, c.relowner, 'USAGE')) AS owned,
           array(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = current_schema()::regnamespace
                   AND c.relname = ANY(:tables)
                   AND NOT (c.relrowsecurity AND EXISTS (
                       SELECT 1 FROM pg_policy p
                       WHERE p.polrelid = c.oid AND p.polname = :policy))) AS unprotected
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


async def row_security(engine: AsyncEngine) -> RowSecurity:
    """Checks the catalog: the tables have their policy, and the role the engine connects as is
    neither superuser, nor ``BYPASSRLS``, nor (a member of) the tables' owner — any of which
    would silently show every tenant's rows."""
    async with engine.connect() as conn:
        params = {"tables": list(TENANT_TABLES), "policy": POLICY_NAME}
        facts = (await conn.execute(ROLE_FACTS, params)).one()
    problems = []
    if facts.superuser:
        problems.append(f"role {facts.role} is a superuser")
    if facts.bypassrls:
        problems.append(f"role {facts.role} has BYPASSRLS")
    if facts.owned:
        problems.append(f"role {facts.role} owns table(s) {', '.join(sorted(facts.owned))}")
    if facts.unprotected:
        problems.append(
            f"table(s) {', '.join(sorted(facts.unprotected))} have no row-level security policy"
            " (run `bughive-mcp migrate` as the owner)"
        )
    return RowSecurity(role=facts.role, problems=tuple(problems))
