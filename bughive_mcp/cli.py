"""``bughive-mcp``, the command line: the parser of its subcommands (serve, migrate, report,
grant-runtime-role, rotate-credentials, doctor), the settings its options override, and the
dispatch to the command.

The commands themselves are ``bughive_mcp.serve_command`` (the server) and
``bughive_mcp.admin_commands`` (the one-shot operator commands); where their messages go is
``bughive_mcp.command_logging``.
"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from bughive_mcp import admin_commands, serve_command
from bughive_mcp.command_logging import configure_logging, log
from bughive_mcp.settings import ServerSettings
from db.connection.config import DatabaseConfig

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
        return serve_command.serve(settings)
    if command == "migrate":
        return admin_commands.migrate()
    if command == "report":
        return admin_commands.report(args.session_id, settings.tenant)
    if command == "rotate-credentials":
        return admin_commands.rotate_credentials()
    if command == "grant-runtime-role":
        return admin_commands.grant_runtime_role(args.role)
    return admin_commands.doctor(args.json, settings.multi_tenant)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
