"""Starting ``bughive-mcp`` when the database is not there (yet), as an operator meets it:

- against a dead port, a wrong password or a missing database, ``serve`` (both transports) and
  ``migrate`` say in one line what failed, where (the masked URL), which setting to change and
  to run ``doctor``, and exit non-zero; the traceback only at ``--log-level debug``;
- a database that is down at start is waited for, with backoff, for
  ``BUGHIVE_DB_CONNECT_RETRY_SECONDS``: a stdio client's ``initialize`` is answered once it is
  up, an HTTP server answers ``/healthz`` with 503 meanwhile; a database that never comes ends
  the wait with one line;
- invalid ``BUGHIVE_TENANT`` / ``BUGHIVE_TENANT_TOKENS`` values: one line, no traceback.

The database that "comes up" is the test PostgreSQL behind a TCP port of this test's own that
starts accepting (and forwarding) only once the server has said it is waiting.
"""

import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import asyncpg
import httpx2
import pytest
from anyio.abc import ByteStream, Process, SocketStream
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from sqlalchemy.engine import URL

from db.connection.embedded import start_embedded_server, stop_embedded_server
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_http import TOKEN, post_initialize
from tests.conftest import PostgresServer, asyncpg_dsn
from tests.infrastructure import free_port

PASSWORD = "startup-must-not-print-this"
WRONG_PASSWORD = "startup-wrong-password-4f2a"
RIGHT_PASSWORD = "startup-right-password-9c1d"
WAIT_SECONDS = 60  # how long a test waits for a child to do what it must
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")


def run(url: URL | str, workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = child_env(None, BUGHIVE_AUTH_TOKEN=TOKEN, **env)
    environment["DATABASE_URL"] = (
        url if isinstance(url, str) else url.render_as_string(hide_password=False)
    )
    return subprocess.run(
        [*SERVER_COMMAND, *args],
        env=environment,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def assert_one_line(finished: subprocess.CompletedProcess[str], *secrets: str) -> str:
    """Non-zero exit, no traceback, exactly one error line (returned); no secret anywhere."""
    assert finished.returncode != 0, finished.stderr
    assert "Traceback" not in finished.stderr, finished.stderr
    errors = error_lines(finished.stderr)
    assert len(errors) == 1, finished.stderr
    for secret in secrets:
        assert secret not in finished.stdout + finished.stderr
    return errors[0]


# --- a PostgreSQL that asks for a password ----------------------------------------------------


@pytest.fixture(scope="module")
def password_server() -> Iterator[URL]:
    """A throwaway PostgreSQL of this module's own that checks passwords (the suite's server
    trusts local connections, so a wrong password would not be noticed there)."""
    data_dir = Path(tempfile.mkdtemp(prefix="bughive-password-")) / "pgdata"
    url = start_embedded_server(data_dir, database="postgres", cleanup="delete")

    async def require_passwords() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(f"ALTER ROLE CURRENT_USER PASSWORD '{RIGHT_PASSWORD}'")
            (data_dir / "pg_hba.conf").write_text("local all all scram-sha-256\n")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    anyio.run(require_passwords)
    yield url.set(password=RIGHT_PASSWORD)
    stop_embedded_server(data_dir)


def unreachable_url() -> URL:
    return URL.create(
        "postgresql", "bughive", PASSWORD, "127.0.0.1", free_port(), "bughive"
    )  # nothing listens there


DEAD_DATABASES = ("unreachable port", "wrong password", "missing database")
COMMANDS = {
    "migrate": ("migrate",),
    "serve stdio": ("serve",),
    "serve http": ("serve", "--transport", "http", "--port", "0"),
}


def dead_database(case: str, database_url: URL, password_server: URL) -> tuple[URL, str]:
    """The URL of a database that cannot be used, and what the one line must say about it."""
    if case == "unreachable port":
        return unreachable_url(), "connection refused"
    if case == "wrong password":
        return password_server.set(password=WRONG_PASSWORD), "password authentication failed"
    url = database_url.set(database="bughive_missing", password=database_url.password or PASSWORD)
    return url, "database 'bughive_missing' does not exist"


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", DEAD_DATABASES)
def test_a_dead_database_at_start_is_one_line_naming_the_url_and_the_setting(
    case: str, command: str, database_url: URL, password_server: URL, tmp_path: Path
) -> None:
    url, reason = dead_database(case, database_url, password_server)

    finished = run(url, tmp_path, *COMMANDS[command], BUGHIVE_DB_CONNECT_RETRY_SECONDS="0")

    line = assert_one_line(finished, str(url.password), TOKEN)
    assert reason in line
    masked = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=True)
    assert masked in line
    assert "DATABASE_URL" in line and "bughive-mcp doctor" in line
    assert finished.stdout == ""


def test_the_traceback_of_a_start_failure_is_shown_at_log_level_debug(tmp_path: Path) -> None:
    url = unreachable_url()

    finished = run(
        url, tmp_path, "migrate", "--log-level", "debug", BUGHIVE_DB_CONNECT_RETRY_SECONDS="0"
    )

    assert finished.returncode != 0
    assert "Traceback" in finished.stderr
    assert "ConnectionRefusedError" in finished.stderr
    assert PASSWORD not in finished.stderr


# --- a database that is down at start -------------------------------------------------------


async def _pump(source: ByteStream, target: ByteStream) -> None:
    try:
        async for chunk in source:
            await target.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        await target.aclose()


async def _backend(url: URL) -> SocketStream:
    """A connection to ``url``'s PostgreSQL: its Unix socket (embedded) or its TCP port."""
    socket_dir = url.query.get("host")
    port = url.port or 5432
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return await anyio.connect_unix(f"{socket_dir}/.s.PGSQL.{port}")
    return await anyio.connect_tcp(url.host or "127.0.0.1", port)


@asynccontextmanager
async def listening_from_now_on(port: int, backend: URL) -> AsyncIterator[None]:
    """From now on, ``127.0.0.1:port`` accepts connections and forwards each to ``backend``'s
    PostgreSQL: for a server pointed at that port, the database has just come up."""

    async def forward(client: SocketStream) -> None:
        async with client, await _backend(backend) as server, anyio.create_task_group() as tg:
            tg.start_soon(_pump, client, server)
            tg.start_soon(_pump, server, client)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, forward)
        yield
        group.cancel_scope.cancel()


def through(port: int, url: URL) -> URL:
    """``url``'s database, reached through ``127.0.0.1:port``."""
    return URL.create(
        "postgresql",
        url.username,
        url.password or PASSWORD,
        "127.0.0.1",
        port,
        url.database,
    )


async def logged(path: Path, text: str) -> str:
    """The first line of the log at ``path`` containing ``text``, once written (polled, with
    the test's deadline around it: the writer is another process)."""
    while True:
        for line in (await anyio.Path(path).read_text()).splitlines():
            if text in line:
                return line
        await anyio.sleep(0.05)


async def test_a_stdio_server_waits_for_a_database_that_comes_up_and_answers_initialize(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    backend = await postgres_server.create_database_async("bughive_late")
    port = free_port()
    env = child_env(through(port, backend), BUGHIVE_DB_CONNECT_RETRY_SECONDS=str(WAIT_SECONDS))
    params = StdioServerParameters(
        command=SERVER_COMMAND[0], args=[*SERVER_COMMAND[1:], "serve"], env=env, cwd=tmp_path
    )
    errlog = tmp_path / "stderr.log"

    with errlog.open("w") as err, anyio.fail_after(WAIT_SECONDS):
        async with anyio.create_task_group() as group:

            async def come_up_once_waited_for() -> None:
                waiting = await logged(errlog, "retrying")
                assert "connection refused" in waiting and "BUGHIVE_DB_CONNECT_RETRY_SECONDS" in (
                    waiting
                )
                async with listening_from_now_on(port, backend):
                    await done.wait()

            done = anyio.Event()
            group.start_soon(come_up_once_waited_for)
            async with Client(stdio_client(params, errlog=err)) as client:
                result = await client.call_tool("check_database_health", {})
            done.set()

    assert not result.is_error, result
    assert "Traceback" not in errlog.read_text()


def healthz(url: str) -> httpx2.Response | None:
    try:
        return httpx2.get(f"{url}/healthz", timeout=2)
    except httpx2.TransportError:
        return None


async def health_until(
    url: str, status: int, process: Process, reason: str | None = None
) -> httpx2.Response:
    """Polls ``/healthz`` of a starting server until it answers ``status``.

    With ``reason``, also until the answer's reason says it: before its first connection attempt
    has failed, a starting server can only say it is connecting, not why it is not ready yet.
    """
    while True:
        assert process.returncode is None, f"the server exited with {process.returncode}"
        response = await anyio.to_thread.run_sync(healthz, url)
        if (
            response is not None
            and response.status_code == status
            and (reason is None or reason in response.json().get("reason", ""))
        ):
            return response
        await anyio.sleep(0.05)


@asynccontextmanager
async def http_server(url: URL, workdir: Path, port: int) -> AsyncIterator[Process]:
    environment = child_env(
        None, BUGHIVE_AUTH_TOKEN=TOKEN, BUGHIVE_DB_CONNECT_RETRY_SECONDS=str(WAIT_SECONDS)
    )
    environment["DATABASE_URL"] = url.render_as_string(hide_password=False)
    with (workdir / "stderr.log").open("w") as log:
        process = await anyio.open_process(
            [*SERVER_COMMAND, "serve", "--transport", "http", "--port", str(port)],
            env=environment,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    async with process:  # (ended on the way out)
        try:
            yield process
        finally:
            process.terminate()
            with anyio.fail_after(WAIT_SECONDS):
                await process.wait()


async def test_an_http_server_is_not_ready_until_the_database_comes_up(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    backend = await postgres_server.create_database_async("bughive_late")
    database_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"

    with anyio.fail_after(WAIT_SECONDS):
        async with http_server(through(database_port, backend), tmp_path, http_port) as process:
            connecting = await health_until(base, 503, process)
            assert connecting.json()["status"] == "starting"
            waiting = await health_until(base, 503, process, reason="connection refused")
            assert waiting.json()["status"] == "starting"
            refused = await anyio.to_thread.run_sync(
                lambda: post_initialize(base, Authorization=f"Bearer {TOKEN}")
            )
            assert refused.status_code == 503
            async with listening_from_now_on(database_port, backend):
                ready = await health_until(base, 200, process)
                served = await anyio.to_thread.run_sync(
                    lambda: post_initialize(base, Authorization=f"Bearer {TOKEN}")
                )

    assert ready.json() == {"status": "ok"}
    assert served.status_code == 200


@pytest.mark.parametrize("command", ["serve stdio", "serve http"])
def test_a_database_that_never_comes_ends_the_wait_with_one_line(
    command: str, tmp_path: Path
) -> None:
    url = unreachable_url()
    started = time.monotonic()

    finished = run(url, tmp_path, *COMMANDS[command], BUGHIVE_DB_CONNECT_RETRY_SECONDS="1.5")

    line = assert_one_line(finished, PASSWORD, TOKEN)
    assert time.monotonic() - started < WAIT_SECONDS
    assert "connection refused" in line
    assert "BUGHIVE_DB_CONNECT_RETRY_SECONDS" in line and "DATABASE_URL" in line


# --- invalid settings -------------------------------------------------------------------------

TENANT_TOKEN = "acme-token-that-is-long-enough"


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("BUGHIVE_TENANT", "no spaces allowed", "a tenant name is 1 to 100 characters"),
        ("BUGHIVE_TENANT_TOKENS", f"acme {TENANT_TOKEN}", "entry 1 is not tenant:token"),
        ("BUGHIVE_TENANT_TOKENS", "acme:tooshort1", "at least 16 characters"),
    ],
)
def test_an_invalid_tenant_setting_is_one_line_naming_the_variable(
    variable: str, value: str, rule: str, database_url: URL, tmp_path: Path
) -> None:
    finished = run(database_url, tmp_path, "serve", **{variable: value})

    line = assert_one_line(finished, TENANT_TOKEN, "tooshort1")
    assert variable in line and rule in line
