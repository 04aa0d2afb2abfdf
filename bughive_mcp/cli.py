"""``bughive-mcp``: serve (stdio or HTTP), migrate, doctor.

stdout belongs to the MCP protocol in stdio mode, so everything here logs to stderr, and only
``doctor`` (an interactive command) prints to stdout.
"""

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from bughive_mcp.settings import ServerSettings
from db.connection import schema_version
from db.connection.config import DatabaseConfig

log = logging.getLogger("bughive_mcp")


def configure_logging(level: str) -> None:
    """Plain lines on stderr for everything (the SDK's own setup then becomes a no-op)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic.runtime.migration", "httpx", "mcp.server.lowlevel.server"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _common_options(default: object) -> argparse.ArgumentParser:
    """Options every command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=default,
        help="default: BUGHIVE_LOG_LEVEL or INFO; DEBUG also shows the tracebacks of failures",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bughive-mcp",
        description="MCP server for BugHive crawl sessions, pages and bugs.",
        parents=[_common_options(None)],
    )
    # (A subcommand's own default would overwrite a --log-level given before its name.)
    sub = parser.add_subparsers(dest="command", parser_class=_SubcommandParser)
    serve = sub.add_parser(
        "serve",
        help="run the MCP server (default)",
        description="Run the MCP server over stdio (default) or streamable HTTP.",
        epilog="HTTP and bearer tokens: a token (BUGHIVE_AUTH_TOKEN, or BUGHIVE_TENANT_TOKENS in "
        "multi-tenant mode) is required when binding to any other address than loopback "
        "(127.0.0.1, localhost, ::1) - the server refuses to start without one - and optional "
        "on loopback, where the server warns at start that any local process can call it.",
    )
    serve.add_argument("--transport", choices=["stdio", "http"], help="default: stdio")
    serve.add_argument(
        "--host", help="HTTP bind address (default 127.0.0.1; any other needs a bearer token)"
    )
    serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    serve.add_argument("--stateless", action="store_true", help="stateless streamable HTTP")
    serve.add_argument("--toolsets", help="comma-separated: sessions,frontier,bugs,reporting,all")
    serve.add_argument("--tools", help="comma-separated tool names to add")
    serve.add_argument("--exclude-tools", help="comma-separated tool names to hide")
    serve.add_argument("--read-only", action="store_true", help="only read-only tools")
    sub.add_parser("migrate", help="bring the database schema to the newest revision")
    report = sub.add_parser("report", help="print the Markdown report of a crawl session")
    report.add_argument("session_id", help="the crawl session's id")
    grant = sub.add_parser(
        "grant-runtime-role",
        help="multi-tenant mode: grant a role what the server needs (run as the tables' owner)",
    )
    grant.add_argument("role", help="the existing role the server will connect as")
    sub.add_parser(
        "rotate-credentials",
        help="re-encrypt stored site credentials with the first key of BUGHIVE_ENCRYPTION_KEY",
    )
    doctor = sub.add_parser("doctor", help="check settings, database and schema")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


class _SubcommandParser(argparse.ArgumentParser):
    """A command's parser: its own options, and the common ones."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs, parents=[_common_options(argparse.SUPPRESS)])


def _server_settings(args: argparse.Namespace) -> ServerSettings:
    overrides: dict[str, Any] = {}
    for key in ("transport", "host", "port", "toolsets", "tools", "exclude_tools", "log_level"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "stateless", False):
        overrides["stateless_http"] = True
    if getattr(args, "read_only", False):
        overrides["read_only"] = True
    return ServerSettings(**overrides)


def serve(settings: ServerSettings) -> int:
    """Serve until the end of input (stdio) or a shutdown signal (both transports, see
    bughive_mcp/shutdown.py); either way the process then exits normally, with code 0."""
    from bughive_mcp.server import build_server
    from bughive_mcp.shutdown import (
        HTTP_SHUTDOWN_GRACE_SECONDS,
        UvicornServer,
        endable_stdin,
        run_until_signalled,
    )
    from bughive_mcp.stdio import serve_stdio
    from bughive_mcp.toolsets import ToolSelectionError

    try:
        server = build_server(settings, DatabaseConfig())
    except ToolSelectionError as exc:
        log.error("%s", exc)
        return 2
    if settings.transport == "stdio":
        try:
            # The pipe must be on fd 0 before serve_stdio takes its own handle on it.
            with endable_stdin() as end_input:
                run_until_signalled(partial(serve_stdio, server), stop=end_input)
        except Exception as exc:
            refusal = _start_refusal(exc)
            if refusal is None:
                raise
            report_failure("cannot start", refusal)
            return 2
        return 0

    import uvicorn

    from bughive_mcp.http import InsecureBindError, build_http_app

    try:
        app = build_http_app(server, settings)
    except InsecureBindError as exc:
        log.error("%s", exc)
        return 2
    log.info("serving MCP over HTTP on http://%s:%d/mcp", settings.host, settings.port)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        timeout_graceful_shutdown=HTTP_SHUTDOWN_GRACE_SECONDS,
    )
    http_server = UvicornServer(config)
    # The start (database, schema) runs while /healthz already answers: when it fails, stop.
    server.readiness.call_on_failure(http_server.stop)
    run_until_signalled(http_server.serve, stop=http_server.stop)
    failure = server.readiness.failure
    if failure is None:
        return 0
    refusal = _start_refusal(failure)
    if refusal is None:
        log.error("cannot start", exc_info=failure)
        return 1
    report_failure("cannot start", refusal)
    return 2


def report_failure(what: str, failure: BaseException) -> None:
    """One line for the operator; the traceback too at ``--log-level debug``."""
    debug = log.isEnabledFor(logging.DEBUG)
    log.error("%s: %s", what, failure, exc_info=failure if debug else None)


def _start_refusal(exc: BaseException) -> Exception | None:
    """The domain error (e.g. stored credentials without their key) that stopped the server's
    start, possibly inside exception groups: reported as one clear line, not a traceback."""
    from db.errors import DomainError

    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _start_refusal(inner)
            if found is not None:
                return found
    return None


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


async def _grant_runtime_role(role: str) -> list[str]:
    from db.connection.database import Database
    from db.connection.tenancy import grant_runtime_role

    db = await anyio.to_thread.run_sync(Database, DatabaseConfig())
    try:
        async with db.engine.begin() as conn:
            return await grant_runtime_role(conn, role)
    finally:
        await db.close()


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


def doctor(as_json: bool, multi_tenant: bool = False) -> int:
    report = anyio.run(_doctor, multi_tenant)
    if as_json:
        print(json.dumps(report, indent=2))  # noqa: T201 - doctor's output is for a human
    else:
        for key, value in report.items():
            print(f"{key:>26}: {value}")  # noqa: T201
    return 0 if report.get("healthy") else 1


def migrate() -> int:
    from db.errors import DomainError

    try:
        revision = anyio.run(_migrate)
    except DomainError as exc:
        report_failure("cannot migrate", exc)
        return 1
    log.info("schema at revision %s", revision)
    return 0


def invalid_settings(err: ValidationError) -> str:
    """A refused setting in one line, by its environment name: ``invalid BUGHIVE_TENANT: …``.
    (The settings hide the refused values, so no token or password is quoted.)"""
    models: dict[str, type[BaseSettings]] = {
        "ServerSettings": ServerSettings,
        "DatabaseConfig": DatabaseConfig,
    }
    model = models.get(err.title)
    problems = []
    for error in err.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        problem = error["msg"].removeprefix("Value error, ")
        problems.append(f"invalid {_environment_name(model, name)}: {problem}")
    return "; ".join(problems)


def _environment_name(model: type[BaseSettings] | None, name: str) -> str:
    if model is None or name not in model.model_fields:
        return name
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        for choice in alias.choices:
            if isinstance(choice, str) and choice.isupper():
                return choice
    return f"{model.model_config.get('env_prefix', '')}{name}".upper()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = _server_settings(args)
    except ValidationError as exc:
        configure_logging(args.log_level or "INFO")
        log.error("%s", invalid_settings(exc))
        return 2
    configure_logging(settings.log_level)
    try:
        return _run(command, args, settings)
    except ValidationError as exc:  # a database setting (DatabaseConfig is read by each command)
        log.error("%s", invalid_settings(exc))
        return 2


def _run(command: str, args: argparse.Namespace, settings: ServerSettings) -> int:
    if command == "serve":
        return serve(settings)
    if command == "migrate":
        return migrate()
    if command == "report":
        return report(args.session_id, settings.tenant)
    if command == "rotate-credentials":
        return rotate_credentials()
    if command == "grant-runtime-role":
        for statement in anyio.run(_grant_runtime_role, args.role):
            log.info("%s", statement)
        return 0
    return doctor(args.json, settings.multi_tenant)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
