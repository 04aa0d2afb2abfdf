"""HTTP transport hardening beyond tests/bughive_mcp/test_http.py (issue 6): the body limit
answers 413 naming the limit, and DNS-rebinding protection (Host and Origin allow-lists) holds
when the server listens on every interface, not only on loopback."""

import subprocess
from collections.abc import Iterator

import httpx2
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

from bughive_mcp.http import transport_security
from bughive_mcp.settings import ServerSettings
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_http import (
    INITIALIZE,
    MCP_HEADERS,
    TOKEN,
    free_port,
    post_initialize,
    wait_until_healthy,
)

LIMIT = 4096
ALL_INTERFACES = ("--host", "0.0.0.0")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def public_url(database_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server bound to 0.0.0.0 (reached over loopback), with a token and a small limit."""
    workdir = tmp_path_factory.mktemp("http-public")
    log_path = workdir / "server.log"
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*SERVER_COMMAND, "serve", "--transport", "http", *ALL_INTERFACES, "--port", str(port)],
            env=child_env(
                database_url, BUGHIVE_AUTH_TOKEN=TOKEN, BUGHIVE_MAX_REQUEST_BYTES=str(LIMIT)
            ),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
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


def padded_initialize(size: int) -> bytes:
    """An initialize request padded with spaces to ``size`` bytes (still valid JSON)."""
    body = httpx2.Request("POST", "http://x", json=INITIALIZE).content
    return body + b" " * (size - len(body))


def post_chunked(public_url: str, body: bytes) -> httpx2.Response:
    """POST ``body`` in 1 KiB chunks, without a Content-Length (chunked transfer encoding)."""

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    return httpx2.post(
        f"{public_url}/mcp",
        content=chunks(),
        headers={**MCP_HEADERS, **AUTH, "Content-Type": "application/json"},
        timeout=10,
    )


def test_a_request_under_the_limit_is_served(public_url: str) -> None:
    response = httpx2.post(
        f"{public_url}/mcp",
        content=padded_initialize(LIMIT),
        headers={**MCP_HEADERS, **AUTH, "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 200


def test_a_body_over_the_limit_is_refused_with_413_naming_the_limit(public_url: str) -> None:
    response = httpx2.post(
        f"{public_url}/mcp",
        content=padded_initialize(LIMIT + 1),
        headers={**MCP_HEADERS, **AUTH, "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 413
    assert str(LIMIT) in response.text and "BUGHIVE_MAX_REQUEST_BYTES" in response.text


def test_a_chunked_body_over_the_limit_is_refused_with_413_naming_the_limit(
    public_url: str,
) -> None:
    response = post_chunked(public_url, padded_initialize(LIMIT * 4))

    assert response.status_code == 413
    assert str(LIMIT) in response.text and "BUGHIVE_MAX_REQUEST_BYTES" in response.text


def test_a_chunked_body_within_the_limit_is_served(public_url: str) -> None:
    response = post_chunked(public_url, padded_initialize(LIMIT))

    assert response.status_code == 200
    assert "serverInfo" in response.text


def test_without_a_token_on_all_interfaces_the_answer_is_401(public_url: str) -> None:
    assert post_initialize(public_url).status_code == 401


def test_a_foreign_origin_is_refused_with_403_on_all_interfaces(public_url: str) -> None:
    response = post_initialize(public_url, **AUTH, Origin="http://evil.example")

    assert response.status_code == 403


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io:8000", "localhost.evil.example"]
)
def test_a_foreign_host_header_is_refused_with_421_on_all_interfaces(
    public_url: str, host: str
) -> None:
    response = post_initialize(public_url, **AUTH, Host=host)

    assert response.status_code == 421


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:9", "http://[::1]:8080"]
)
def test_local_origins_are_served_on_all_interfaces(public_url: str, origin: str) -> None:
    assert post_initialize(public_url, **AUTH, Origin=origin).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "10.1.2.3", "mcp.internal"])
def test_dns_rebinding_protection_is_on_for_every_bind_address(host: str) -> None:
    settings = ServerSettings(
        _env_file=None, transport="http", host=host, auth_token=SecretStr(TOKEN)
    )

    security = transport_security(settings)

    assert security.enable_dns_rebinding_protection is True
    assert not any(h.startswith("*") for h in security.allowed_hosts)
    assert not any(o.startswith("*") or "://*" in o for o in security.allowed_origins)
