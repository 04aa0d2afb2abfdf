"""The streamable HTTP transport, for a fleet of crawler workers.

Layers, outside in: bearer-token check (constant-time compare; ``/healthz`` is open for
liveness probes), then the SDK's transport with explicit DNS-rebinding protection (Host and
Origin allow-lists for every bind address, not only localhost) and a request-body limit.
"""

import hmac

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bughive_mcp.server import BugHiveServer
from bughive_mcp.settings import ServerSettings

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


class InsecureBindError(ValueError):
    """Refusing to serve HTTP on a non-loopback address without a bearer token."""


def check_http_settings(settings: ServerSettings) -> None:
    if not settings.is_loopback and settings.auth_token is None:
        raise InsecureBindError(
            f"refusing to serve HTTP on {settings.host} without authentication: set "
            "BUGHIVE_AUTH_TOKEN (a long random string) or bind to 127.0.0.1"
        )


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """Host/Origin allow-lists: loopback names always, plus the bind host and configured ones."""
    names = list(LOCAL_NAMES)
    if settings.host not in ("0.0.0.0", "::") and settings.host not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    hosts = [f"{name}:*" for name in names] + list(settings.allowed_hosts)
    origins = [f"{scheme}://{name}:*" for name in names for scheme in ("http", "https")]
    origins += list(settings.allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class BearerTokenMiddleware:
    """Requires ``Authorization: Bearer <token>`` on every HTTP request but the health probe."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        header = Request(scope).headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self.token
        ):
            response = JSONResponse(
                {"error": "unauthorized", "error_description": "a valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="bughive-mcp"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_http_app(server: BugHiveServer, settings: ServerSettings) -> ASGIApp:
    """The ASGI app serving MCP at ``/mcp`` and liveness at ``/healthz``."""
    check_http_settings(settings)

    @server.custom_route(HEALTH_PATH, methods=["GET"])
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=settings.stateless_http,
        max_request_body_size=settings.max_request_bytes,
        transport_security=transport_security(settings),
        host=settings.host,
    )
    if settings.auth_token is not None:
        app = BearerTokenMiddleware(app, settings.auth_token.get_secret_value())
    return app
