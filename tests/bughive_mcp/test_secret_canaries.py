"""Canaries (issue 6, "Secrets"): a known password in ``DATABASE_URL``, another as a site
password in a session's credentials, and the encryption key itself. Every tool and every error
path runs; no tool output, log record, stderr line or ``doctor`` report may contain any of them
(nor the site password's Fernet token).

The test PostgreSQL trusts local connections, so a URL carrying a password it never asked for
still connects (a server that needs one already has it in the URL: that one is the canary)."""

import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent
from sqlalchemy.engine import URL

from bughive_mcp.server import BugHiveServer, build_server
from bughive_mcp.settings import ServerSettings
from db.connection.database import Database
from db.repositories import CrawlSessionRepository
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_http import free_port
from tests.bughive_mcp.toolcalls import BASE_URL, BUG_FIELDS, HOME
from tests.conftest import TEST_ENCRYPTION_KEY, make_config

pytestmark = pytest.mark.anyio

DB_CANARY = "canary-db-password-5b1e0c"
SITE_CANARY = "canary-site-password-93d7aa"


def canary_url(database_url: URL) -> URL:
    return database_url if database_url.password else database_url.set(password=DB_CANARY)


def secrets_of(url: URL) -> list[str]:
    return [str(url.password), SITE_CANARY, TEST_ENCRYPTION_KEY]


def assert_clean(texts: Iterable[str], secrets: list[str], where: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}: {text[:300]}"


def text_of(result: CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


class Surface:
    """Calls tools and keeps every answer's text."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.texts: list[str] = []
        self.succeeded: set[str] = set()

    async def __call__(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert isinstance(result, CallToolResult)
        self.texts.append(text_of(result))
        if result.is_error:
            return {}
        self.succeeded.add(tool)
        assert isinstance(result.structured_content, dict)
        return dict(result.structured_content)


async def every_tool_and_error(call: Surface, tools: list[str]) -> None:
    """A crawl that calls every tool, then every tool's error paths."""
    credentials = {"username": "qa", "password": SITE_CANARY, "login_url": f"{BASE_URL}/login"}
    await call("check_database_health")
    session = await call("create_session", base_url=BASE_URL, config={"credentials": credentials})
    sid = session["id"]
    await call("start_session", session_id=sid)
    home = await call("create_page", session_id=sid, url=HOME)
    await call("bulk_create_pages", session_id=sid, pages=[{"url": f"{BASE_URL}/a", "depth": 1}])
    await call("get_pages_to_crawl", session_id=sid)
    taken = await call("mark_crawling", page_id=home["id"])
    await call("extend_claim", page_id=home["id"], claim_token=taken["claim_token"])
    await call("mark_analyzed", page_id=home["id"], claim_token=taken["claim_token"], title="S")
    claim = await call("claim_pages_to_crawl", session_id=sid)
    [other] = claim["items"]
    await call("mark_page_error", page_id=other["id"], claim_token=claim["claim_token"],
               error_message="timeout")  # fmt: skip
    await call("create_page", session_id=sid, url=f"{BASE_URL}/b", depth=1)
    claim = await call("claim_pages_to_crawl", session_id=sid)
    [last] = claim["items"]
    await call("finish_page", page_id=last["id"], claim_token=claim["claim_token"],
               title="B", links=[{"url": f"{BASE_URL}/c"}])  # fmt: skip
    bug = await call("create_bug", session_id=sid, page_id=home["id"], **BUG_FIELDS)
    second = await call(
        "create_bug", session_id=sid, page_id=home["id"], **{**BUG_FIELDS, "title": "Other"}
    )
    await call("get_bug", bug_id=bug["id"])
    await call("mark_validated", bug_id=bug["id"])
    await call("mark_reported", bug_id=bug["id"], linear_issue_id="B-1",
               linear_issue_url="https://linear.app/x/B-1")  # fmt: skip
    await call("dismiss_bug", bug_id=second["id"], reason="duplicate")
    for name in ("get_high_confidence_bugs", "get_critical_bugs", "get_session_bugs"):
        await call(name, session_id=sid)
    for name in ("get_bug_statistics", "get_session_statistics", "get_navigation_graph"):
        await call(name, session_id=sid)
    await call("get_page", page_id=home["id"])
    await call("get_page_analytics", page_id=home["id"])
    await call("add_cost", session_id=sid, cost_usd=0.5)
    for form in ("json", "markdown"):
        await call("export_session_report", session_id=sid, format=form)
    await call("get_session", session_id=sid)
    await call("list_sessions")
    await call("complete_session", session_id=sid)
    assert call.succeeded == set(tools), set(tools) - call.succeeded

    missing = str(uuid.uuid4())
    for tool in tools:  # error paths: unknown argument, wrong types, NUL, missing rows
        await call(tool, unexpected=SITE_CANARY)
        await call(tool, session_id=missing, page_id=missing, bug_id=missing)
        await call(tool, session_id=7, page_id=[], bug_id={"a": 1}, limit="many")
        await call(tool, session_id=f"x\x00{SITE_CANARY}")
    await call("create_session", base_url="ftp://nope", config={"credentials": {"password": 1}})
    await call("start_session", session_id=sid)  # invalid transition
    await call("mark_analyzed", page_id=home["id"], claim_token=missing)  # lease lost


@pytest.fixture
async def canary_client(database_url: URL, db: Database) -> AsyncIterator[tuple[Client, URL]]:
    url = canary_url(database_url)
    server = build_server(
        ServerSettings(_env_file=None, auto_migrate=False),
        make_config(database_url=url.render_as_string(hide_password=False)),
    )
    async with Client(server) as client:
        yield client, url


async def test_no_tool_output_or_log_carries_a_secret(
    canary_client: tuple[Client, URL],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    raw: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, url = canary_client
    call = Surface(client)
    tools = sorted(t.name for t in (await client.list_tools()).tools)

    with caplog.at_level(logging.DEBUG):
        await every_tool_and_error(call, tools)

        async def broken(self: CrawlSessionRepository, session_id: uuid.UUID) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(CrawlSessionRepository, "get", broken)
        await call("get_session", session_id=str(uuid.uuid4()))  # the internal-error path

    token = await raw.fetchval(
        "SELECT config->'credentials'->>'password_encrypted' FROM crawl_sessions"
    )
    secrets = [*secrets_of(url), token]
    assert "internal error" in call.texts[-1]
    assert_clean(call.texts, secrets, "a tool output")
    records = [caplog.text, *(r.getMessage() for r in caplog.records)]
    assert_clean(records, secrets, "a log record")
    captured = capfd.readouterr()
    assert_clean([captured.out, captured.err], secrets, "stdout/stderr")


@pytest.fixture
def sql_logging_restored() -> Iterator[None]:
    """``echo`` configures the process's SQLAlchemy logger: put it back for the next tests."""
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


async def test_echo_logs_each_statement_once_and_never_its_parameters(
    database_url: URL,
    raw: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    sql_logging_restored: None,
) -> None:
    url = canary_url(database_url)
    server = build_server(
        ServerSettings(_env_file=None, auto_migrate=False),
        make_config(database_url=url.render_as_string(hide_password=False), echo=True),
    )
    credentials = {"username": "qa", "password": SITE_CANARY}
    async with Client(server) as client:
        call = Surface(client)
        session = await call(
            "create_session", base_url=BASE_URL, config={"credentials": credentials}
        )
        await call("get_session", session_id=session["id"])

    token = await raw.fetchval(
        "SELECT config->'credentials'->>'password_encrypted' FROM crawl_sessions"
    )
    captured = capfd.readouterr()
    logged = [r.getMessage() for r in caplog.records]
    assert_clean([*logged, captured.out, captured.err], [*secrets_of(url), token], "the echo")
    # Once, through the process's own log (stderr): never a second copy on stdout, which
    # belongs to the protocol in stdio mode.
    assert sum("INSERT INTO crawl_sessions" in m for m in logged) == 1
    assert "INSERT INTO crawl_sessions" not in captured.out


async def test_a_server_that_cannot_reach_its_database_names_no_secret(
    database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    closed = canary_url(database_url).set(host="127.0.0.1", port=free_port())
    server: BugHiveServer = build_server(
        ServerSettings(_env_file=None, auto_migrate=False),
        make_config(
            database_url=closed.render_as_string(hide_password=False),
            connect_timeout=2,
            connect_retry_seconds=0,
        ),
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as failed:
        async with Client(server):
            pass

    assert_clean(
        [str(failed.value), repr(failed.value), caplog.text], secrets_of(closed), "start-up"
    )


def run_cli(url: URL, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER_COMMAND, *args],
        env=child_env(url, BUGHIVE_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_doctor_prints_no_secret(database_url: URL, db: Database, tmp_path: Path) -> None:
    url = canary_url(database_url)
    async with db.session() as session:
        await CrawlSessionRepository(session).create_session(
            BASE_URL, {"credentials": {"username": "qa", "password": SITE_CANARY}}
        )

    outputs = []
    for args in (("doctor",), ("doctor", "--json")):
        finished = await anyio.to_thread.run_sync(partial(run_cli, url, tmp_path, *args))
        assert finished.returncode == 0, finished.stderr
        outputs += [finished.stdout, finished.stderr]
    down = url.set(host="127.0.0.1", port=free_port())
    unreachable = await anyio.to_thread.run_sync(lambda: run_cli(down, tmp_path, "doctor"))
    outputs += [unreachable.stdout, unreachable.stderr]

    assert unreachable.returncode != 0
    assert_clean(outputs, secrets_of(url), "doctor's output")


async def test_a_stdio_server_writes_no_secret_to_stderr(
    database_url: URL, db: Database, tmp_path: Path
) -> None:
    url = canary_url(database_url)
    params = StdioServerParameters(
        command=SERVER_COMMAND[0],
        args=[*SERVER_COMMAND[1:], "serve"],
        env=child_env(url, BUGHIVE_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY, BUGHIVE_LOG_LEVEL="DEBUG"),
        cwd=tmp_path,
    )
    errlog = tmp_path / "stderr.log"
    with errlog.open("w") as err, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=err)) as client:
            call = Surface(client)
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            await every_tool_and_error(call, tools)

    logged = errlog.read_text()
    assert "tool=create_session" in logged  # the log really was captured
    assert_clean([*call.texts, logged], secrets_of(url), "the stdio server")
