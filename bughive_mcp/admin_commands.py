"""The one-shot operator commands of ``bughive-mcp``: ``migrate``, ``doctor``, ``report``,
``grant-runtime-role`` and ``rotate-credentials``.

Each opens the database once, does its work and closes it, returning the process's exit code;
they live apart from the parser (``bughive_mcp.cli``) and from ``serve``, the long-running
command. Each imports what it needs when it runs, so the others start fast.
"""

import json
from typing import Any

import anyio

from bughive_mcp.command_logging import log, report_failure
from db.connection import schema_version
from db.connection.config import DatabaseConfig


async def _migrate() -> str | None:
    from db.connection.database import Database
    from db.connection.startup import wait_until_reachable

    db = await anyio.to_thread.run_sync(Database, DatabaseConfig())
    try:
        await wait_until_reachable(db)
        await db.init_db()
        return await db.schema_revision()
    finally:
        await db.close()


def migrate() -> int:
    from db.errors import DomainError

    try:
        revision = anyio.run(_migrate)
    except DomainError as exc:
        report_failure("cannot migrate", exc)
        return 1
    log.info("schema at revision %s", revision)
    return 0


async def _doctor(multi_tenant: bool = False) -> dict[str, Any]:
    from db.connection.database import Database
    from db.connection.tenancy import row_security

    config = DatabaseConfig()
    report: dict[str, Any] = {
        "database_url": config.safe_url,
        "pool": {
            "pool_size": config.pool_size,
            "max_overflow": config.max_overflow,
            "pool_timeout": config.pool_timeout,
            "statement_timeout_ms": config.statement_timeout_ms,
        },
        "expected_schema_revision": schema_version.head_revision(),
    }
    if config.url is None:
        from db.connection.embedded import resolved_data_dir

        report["embedded_data_dir"] = str(resolved_data_dir(config.embedded_data_dir))
    try:
        db = await anyio.to_thread.run_sync(Database, config)
    except Exception as exc:
        report.update(healthy=False, problem=f"could not open the database ({type(exc).__name__})")
        return report
    try:
        healthy = await db.check_health()
        revision = await db.schema_revision() if healthy else None
        report.update(
            reachable=healthy,
            schema_revision=revision,
            pool_status=db.pool_status(),
        )
        problems = []
        if not healthy:
            problems.append("database unreachable")
        elif revision != report["expected_schema_revision"]:
            problems.append("schema not at the newest revision: run `bughive-mcp migrate`")
        elif multi_tenant:
            security = await row_security(db.engine)
            report["row_security"] = "enforced" if security.enforced else "not enforced"
            problems += [f"multi-tenant mode: {p}" for p in security.problems]
        if not problems:
            problems += await _credentials_problems(db, report)
        report["healthy"] = not problems
        if problems:
            report["problem"] = "; ".join(problems)
    finally:
        await db.close()
    return report


async def _credentials_problems(db: Any, report: dict[str, Any]) -> list[str]:
    """Whether the stored site credentials can be opened with the configured keys."""
    from db.repositories.credentials import check_stored_credentials
    from db.rules.secrets import CredentialsUnavailable, cipher_of

    report["encryption_keys_configured"] = len(db.config.encryption_keys)
    try:
        async with db.session() as session:
            stored = await check_stored_credentials(session, cipher_of(session))
    except CredentialsUnavailable as exc:
        return [str(exc)]
    report["sessions_with_credentials"] = stored
    return []


def doctor(as_json: bool, multi_tenant: bool = False) -> int:
    report = anyio.run(_doctor, multi_tenant)
    if as_json:
        print(json.dumps(report, indent=2))  # noqa: T201 - doctor's output is for a human
    else:
        for key, value in report.items():
            print(f"{key:>26}: {value}")  # noqa: T201
    return 0 if report.get("healthy") else 1


async def _report(session_id: str, tenant: str | None = None) -> str:
    import uuid

    from bughive_mcp.report import build_report, render_markdown
    from db.connection.database import Database

    db = await anyio.to_thread.run_sync(Database, DatabaseConfig())
    try:
        async with db.session(tenant=tenant) as session:
            return render_markdown(await build_report(session, uuid.UUID(session_id)))
    finally:
        await db.close()


def report(session_id: str, tenant: str | None = None) -> int:
    from db.errors import DomainError

    try:
        text = anyio.run(_report, session_id, tenant)
    except ValueError:
        log.error("%r is not a session id (a UUID)", session_id)
        return 2
    except DomainError as exc:
        log.error("%s", exc)
        return 1
    print(text, end="")  # noqa: T201 - the report is this command's output
    return 0


async def _grant_runtime_role(role: str) -> list[str]:
    from db.connection import tenancy
    from db.connection.database import Database

    db = await anyio.to_thread.run_sync(Database, DatabaseConfig())
    try:
        async with db.engine.begin() as conn:
            return await tenancy.grant_runtime_role(conn, role)
    finally:
        await db.close()


def grant_runtime_role(role: str) -> int:
    for statement in anyio.run(_grant_runtime_role, role):
        log.info("%s", statement)
    return 0


async def _rotate_credentials() -> int:
    from db.connection.database import Database
    from db.repositories.credentials import rotate
    from db.rules.secrets import CredentialsUnavailable, cipher_of

    db = await anyio.to_thread.run_sync(Database, DatabaseConfig())
    try:
        async with db.session() as session:
            cipher = cipher_of(session)
            if cipher is None:
                raise CredentialsUnavailable(
                    "set BUGHIVE_ENCRYPTION_KEY to the new key followed by the old ones"
                )
            return await rotate(session, cipher)
    finally:
        await db.close()


def rotate_credentials() -> int:
    from db.rules.secrets import CredentialsUnavailable

    try:
        count = anyio.run(_rotate_credentials)
    except CredentialsUnavailable as exc:
        log.error("%s", exc)
        return 1
    log.info("re-encrypted the site credentials of %d crawl session(s) with the first key", count)
    return 0
