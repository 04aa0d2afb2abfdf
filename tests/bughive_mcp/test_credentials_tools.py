"""Site credentials through the tools and the command line (issue 6, "Secrets"): masked in
every output, refused without a key, and a server that cannot open stored credentials does not
start."""

import subprocess
from pathlib import Path

import anyio
import asyncpg
import pytest
from cryptography.fernet import Fernet
from mcp import Client
from sqlalchemy.engine import URL

from bughive_mcp.server import build_server
from bughive_mcp.settings import ServerSettings
from db.connection.database import Database
from db.repositories import CrawlSessionRepository
from db.rules.secrets import CredentialsUnavailable
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.toolcalls import BASE_URL, MASK, call_error, call_ok
from tests.conftest import TEST_ENCRYPTION_KEY, make_config

pytestmark = pytest.mark.anyio

PASSWORD = "hunter2-but-longer"
CREDENTIALS = {"username": "qa", "password": PASSWORD, "login_url": f"{BASE_URL}/login"}


async def test_every_session_view_masks_the_password(client: Client) -> None:
    session = await call_ok(
        client,
        "create_session",
        base_url=BASE_URL,
        config={"credentials": CREDENTIALS},
        verbose=True,
    )
    sid = session["id"]
    listed = await call_ok(client, "list_sessions")
    assert "config" not in listed["items"][0]  # a listing carries no configuration
    assert PASSWORD not in str(listed)
    views = [
        session["session"],
        await call_ok(client, "get_session", session_id=sid),
        (await call_ok(client, "get_session_statistics", session_id=sid))["session"],
        (await call_ok(client, "export_session_report", session_id=sid, format="json"))["report"][
            "statistics"
        ]["session"],
        (await call_ok(client, "complete_session", session_id=sid, success=False, verbose=True))[
            "session"
        ],
    ]

    for view in views:
        assert view["config"]["credentials"] == {**CREDENTIALS, "password": MASK}


def keyless_server(database_url: URL) -> Client:
    server = build_server(
        ServerSettings(_env_file=None, auto_migrate=False),
        make_config(
            database_url=database_url.render_as_string(hide_password=False), encryption_key=None
        ),
    )
    return Client(server)


async def test_credentials_are_refused_by_a_server_without_a_key(
    database_url: URL, db: Database, raw: asyncpg.Connection
) -> None:
    async with keyless_server(database_url) as client:
        message = await call_error(
            client, "create_session", base_url=BASE_URL, config={"credentials": CREDENTIALS}
        )
        await call_ok(client, "create_session", base_url=BASE_URL)  # without: fine

    assert "invalid 'config.credentials'" in message and "BUGHIVE_ENCRYPTION_KEY" in message
    assert PASSWORD not in message
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 1


async def stored_credentials(db: Database) -> None:
    async with db.session() as session:
        await CrawlSessionRepository(session).create_session(BASE_URL, {"credentials": CREDENTIALS})


async def test_a_server_without_the_key_of_stored_credentials_does_not_start(
    database_url: URL, db: Database
) -> None:
    await stored_credentials(db)

    with pytest.raises(Exception) as refused:
        async with keyless_server(database_url):
            pass

    found: BaseException = refused.value
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    assert isinstance(found, CredentialsUnavailable)
    assert "BUGHIVE_ENCRYPTION_KEY is not set" in str(found)


def run(
    database_url: URL, workdir: Path, *args: str, key: str | None
) -> "subprocess.CompletedProcess[str]":
    extra = {} if key is None else {"BUGHIVE_ENCRYPTION_KEY": key}
    return subprocess.run(
        [*SERVER_COMMAND, *args],
        env=child_env(database_url, **extra),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_serve_without_the_key_exits_with_one_clear_line(
    database_url: URL, db: Database, tmp_path: Path
) -> None:
    await stored_credentials(db)

    finished = await anyio.to_thread.run_sync(
        lambda: run(database_url, tmp_path, "serve", key=None)
    )

    assert finished.returncode == 2
    assert "cannot start" in finished.stderr and "BUGHIVE_ENCRYPTION_KEY" in finished.stderr
    assert "Traceback" not in finished.stderr


async def test_doctor_reports_credentials_it_cannot_open(
    database_url: URL, db: Database, tmp_path: Path
) -> None:
    await stored_credentials(db)
    wrong = Fernet.generate_key().decode()

    finished = await anyio.to_thread.run_sync(
        lambda: run(database_url, tmp_path, "doctor", "--json", key=wrong)
    )

    assert finished.returncode == 1
    assert "cannot be decrypted" in finished.stdout
    assert wrong not in finished.stdout + finished.stderr


async def test_rotate_credentials_moves_them_to_the_new_key(
    database_url: URL, db: Database, tmp_path: Path
) -> None:
    await stored_credentials(db)
    new = Fernet.generate_key().decode()

    rotated = await anyio.to_thread.run_sync(
        lambda: run(
            database_url, tmp_path, "rotate-credentials", key=f"{new},{TEST_ENCRYPTION_KEY}"
        )
    )
    doctor = await anyio.to_thread.run_sync(lambda: run(database_url, tmp_path, "doctor", key=new))

    assert rotated.returncode == 0, rotated.stderr
    assert "1 crawl session(s)" in rotated.stderr
    assert doctor.returncode == 0, doctor.stdout
