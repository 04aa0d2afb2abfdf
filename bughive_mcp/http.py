"""The streamable HTTP transport, for a fleet of crawler workers.

Layers, outside in: bearer-token check (constant-time compare; ``/healthz`` is open for
liveness probes), the start-up gate (``bughive_mcp.readiness``: 503 until the database is
connected), then the SDK's transport with explicit DNS-rebinding protection (Host and
Origin allow-lists for every bind address, not only localhost) and a request-body limit.

Each token is a user to the SDK, which binds every MCP session to the user that opened it: a
session id presented with another token is answered as an unknown one (404 "Session not
found"), so one client can neither use nor end another's session, nor learn that it exists.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthCredentials
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bughive_mcp.readiness import StartInBackground
from bughive_mcp.server import BugHiveServer
from bughive_mcp.settings import ServerSettings
from bughive_mcp.tenancy import TenantToken, current_tenant, match_token

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")

log = logging.getLogger(__name__)


class InsecureBindError(ValueError):
    """Refusing to serve HTTP on a non-loopback address without a bearer token."""


def check_http_settings(settings: ServerSettings) -> None:
    """The bearer-token rule: required off loopback (refused to start without one), optional
    on loopback (allowed, with a warning: any local process can then call the tools)."""
    if not settings.is_loopback and settings.auth_token is None and not settings.tenant_tokens:
        raise InsecureBindError(
            f"refusing to serve HTTP on {settings.host} without authentication: set "
            "BUGHIVE_AUTH_TOKEN (a long random string) or bind to 127.0.0.1"
        )
    if settings.auth_token is not None and settings.tenant_tokens:
        token = settings.auth_token.get_secret_value()
        if settings.tenant is None:
            raise InsecureBindError(
                "multi-tenant mode: BUGHIVE_AUTH_TOKEN would act as no tenant; set "
                "BUGHIVE_TENANT for it, or give each client a token in BUGHIVE_TENANT_TOKENS"
            )
        if any(t.token.get_secret_value() == token for t in settings.tenant_tokens):
            raise InsecureBindError("BUGHIVE_AUTH_TOKEN is also one of BUGHIVE_TENANT_TOKENS")
    if settings.auth_token is None and not settings.tenant_tokens:
        log.warning(
            "serving HTTP on %s without a bearer token: any local process can call the tools; "
            "set BUGHIVE_AUTH_TOKEN to require one (it is required off loopback)",
            settings.host,
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


class BodyLimitMiddleware:
    """Refuses a request body over the limit with 413 and a body that names the limit and the
    setting — whether the client declared its length (``Content-Length``: refused before
    reading) or streams it in chunks (counted while read, refused at the first byte over the
    limit; a body within it is buffered and handed on unchanged)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Request(scope).headers.get("content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                over = f"the request body is {declared} bytes, over"
                await self._refuse(over, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse("the streamed request body is over", scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, over: str, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": "request_too_large",
                "error_description": f"{over} the limit of {self.max_bytes} bytes "
                "(BUGHIVE_MAX_REQUEST_BYTES)",
            },
            status_code=413,
        )
        await response(scope, receive, send)


@dataclass(frozen=True)
class TokenPrincipal:
    """Who presents a token: the tenant it acts as, and the user it is to the SDK."""

    tenant: str | None
    user: AuthenticatedUser

    @classmethod
    def numbered(cls, number: int, tenant: str | None) -> "TokenPrincipal":
        """The SDK tells users apart by ``client_id``: a name for the token, not the token
        (which would then sit in every repr of the user)."""
        name = f"token-{number}"
        return cls(tenant, AuthenticatedUser(AccessToken(token=name, client_id=name, scopes=[])))


class BearerTokenMiddleware:
    """Requires ``Authorization: Bearer <token>`` on every HTTP request but the health probe.

    In multi-tenant mode each token acts as a tenant (``tenant`` for ``token``, and every
    entry of ``tenant_tokens``): the request is served with ``current_tenant`` set to it.
    Each token is also the request's user (``scope["user"]``, as Starlette's authentication
    sets it), to which the SDK binds the MCP sessions it opens."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None = None,
        *,
        tenant: str | None = None,
        tenant_tokens: Iterable[TenantToken] = (),
    ) -> None:
        self.app = app
        tokens: list[tuple[str, str | None]] = [
            (t.token.get_secret_value(), t.tenant) for t in tenant_tokens
        ]
        if token is not None:
            tokens.append((token, tenant))
        self.principals = [
            (secret.encode(), TokenPrincipal.numbered(number, owner))
            for number, (secret, owner) in enumerate(tokens, start=1)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        header = Request(scope).headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        authenticated, principal = match_token(presented.strip(), self.principals)
        if scheme.lower() != "bearer" or not authenticated or principal is None:
            response = JSONResponse(
                {"error": "unauthorized", "error_description": "a valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="bughive-mcp"'},
            )
            await response(scope, receive, send)
            return
        scope["user"], scope["auth"] = principal.user, AuthCredentials()
        bound = current_tenant.set(principal.tenant)
        try:
            await self.app(scope, receive, send)
        finally:
            current_tenant.reset(bound)


def build_http_app(server: BugHiveServer, settings: ServerSettings) -> ASGIApp:
    """The ASGI app serving MCP at ``/mcp`` and health at ``/healthz``: 200 once the server
    has started, 503 with the reason while it waits for its database."""
    check_http_settings(settings)
    readiness = server.readiness

    @server.custom_route(HEALTH_PATH, methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(request: Request) -> JSONResponse:
        if readiness.is_ready:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"status": readiness.status, "reason": readiness.reason}, status_code=503
        )

    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=settings.stateless_http,
        max_request_body_size=settings.max_request_bytes,
        transport_security=transport_security(settings),
        host=settings.host,
    )
    app = StartInBackground(app, readiness, open_paths=(HEALTH_PATH,))
    app = BodyLimitMiddleware(app, settings.max_request_bytes)
    if settings.auth_token is not None or settings.tenant_tokens:
        token = settings.auth_token.get_secret_value() if settings.auth_token else None
        app = BearerTokenMiddleware(
            app, token, tenant=settings.tenant, tenant_tokens=settings.tenant_tokens
        )
    return app
