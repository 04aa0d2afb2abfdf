"""End to end over streamable HTTP on a loopback port: ``python -m bughive_mcp serve
--transport http`` in a subprocess, with a bearer token, as a fleet of workers reaches it."""

import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from sqlalchemy.engine import URL

from bughive_mcp.cli import main
from bughive_mcp.http import InsecureBindError, build_http_app, check_http_settings
from bughive_mcp.settings import ServerSettings
from tests.bughive_mcp.conftest import make_server
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.toolcalls import small_crawl

pytestmark = pytest.mark.anyio

TOKEN = "test-token-" + "x" * 32
START_SECONDS = 30
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "http-test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url(database_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, started once for this module; ready when /healthz answers."""
    workdir = tmp_path_factory.mktemp("http-server")
    log_path = workdir / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*SERVER_COMMAND, "serve", "--transport", "http", "--port", str(port)],
            env=child_env(database_url, BUGHIVE_AUTH_TOKEN=TOKEN),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Start-up only: poll /healthz until it answers 200, the process dies, or time runs out."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not healthy after {START_SECONDS}s:\n{log_path.read_text()}")


def post_initialize(url: str, **headers: str) -> httpx2.Response:
    return httpx2.post(
        f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10
    )


def test_healthz_answers_without_a_token(base_url: str) -> None:
    response = httpx2.get(f"{base_url}/healthz", timeout=10)

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.usefixtures("db")
async def test_a_small_crawl_runs_over_http_with_the_bearer_token(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        await small_crawl(client)


def test_mcp_with_the_token_and_a_local_origin_is_served(base_url: str) -> None:
    response = post_initialize(
        base_url, Authorization=f"Bearer {TOKEN}", Origin="http://localhost:3000"
    )

    assert response.status_code == 200


def test_mcp_without_a_token_is_refused_with_401(base_url: str) -> None:
    response = post_initialize(base_url)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_mcp_with_a_wrong_token_is_refused_with_401(base_url: str) -> None:
    response = post_initialize(base_url, Authorization=f"Bearer {TOKEN}-but-not-quite")

    assert response.status_code == 401


def test_mcp_with_a_foreign_origin_is_refused_with_403(base_url: str) -> None:
    response = post_initialize(
        base_url, Authorization=f"Bearer {TOKEN}", Origin="https://evil.example"
    )

    assert response.status_code == 403


def test_check_http_settings_refuses_all_interfaces_without_a_token() -> None:
    settings = ServerSettings(_env_file=None, transport="http", host="0.0.0.0")

    with pytest.raises(InsecureBindError, match="BUGHIVE_AUTH_TOKEN"):
        check_http_settings(settings)


def test_check_http_settings_accepts_all_interfaces_with_a_token() -> None:
    settings = ServerSettings(
        _env_file=None, transport="http", host="0.0.0.0", auth_token=SecretStr(TOKEN)
    )

    check_http_settings(settings)


def test_check_http_settings_accepts_loopback_without_a_token() -> None:
    settings = ServerSettings(_env_file=None, transport="http", host="127.0.0.1")

    check_http_settings(settings)


def test_serving_http_on_all_interfaces_without_a_token_exits_naming_the_setting(
    database_url: URL, tmp_path: Path
) -> None:
    finished = subprocess.run(
        [*SERVER_COMMAND, "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env=child_env(database_url),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode != 0
    assert b"BUGHIVE_AUTH_TOKEN" in finished.stderr


@pytest.mark.parametrize("token", [None, TOKEN])
def test_serving_http_on_loopback_without_a_token_warns_at_start(
    database_url: URL, token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    settings: dict[str, Any] = {"transport": "http"}
    if token is not None:
        settings["auth_token"] = SecretStr(token)
    server = make_server(database_url, **settings)

    with caplog.at_level(logging.WARNING, logger="bughive_mcp"):
        build_http_app(server, ServerSettings(_env_file=None, **settings))

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if token is None:
        assert len(warnings) == 1, warnings
        assert "without a bearer token" in warnings[0] and "BUGHIVE_AUTH_TOKEN" in warnings[0]
    else:
        assert warnings == []


def test_serve_help_says_when_a_bearer_token_is_required(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])

    shown = " ".join(capsys.readouterr().out.split())
    assert "BUGHIVE_AUTH_TOKEN" in shown
    assert "required when binding to any other address" in shown
    assert "optional on loopback" in shown
