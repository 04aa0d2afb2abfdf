"""Multi-tenant settings and the bearer-token → tenant mapping, without a database: parsing
``BUGHIVE_TENANT_TOKENS`` (never echoing a token), the HTTP checks, and the middleware putting
each request's tenant in ``current_tenant`` for exactly that request."""

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from starlette.types import Message, Receive, Scope, Send

from bughive_mcp.http import (
    HEALTH_PATH,
    BearerTokenMiddleware,
    InsecureBindError,
    check_http_settings,
)
from bughive_mcp.settings import ServerSettings
from bughive_mcp.tenancy import (
    TenantRequired,
    current_tenant,
    match_token,
    parse_tenant_tokens,
    request_tenant,
)

ACME_TOKEN = "acme-" + "a" * 32
GLOBEX_TOKEN = "globex-" + "g" * 32
ROTATED_TOKEN = "acme-next-" + "n" * 32
TOKENS = f"acme:{ACME_TOKEN}, globex:{GLOBEX_TOKEN},acme:{ROTATED_TOKEN}"


def settings(**values: Any) -> ServerSettings:
    return ServerSettings(_env_file=None, **values)


def test_tenant_tokens_map_each_token_to_its_tenant_and_a_tenant_may_have_several() -> None:
    parsed = parse_tenant_tokens(TOKENS)

    assert [(t.tenant, t.token.get_secret_value()) for t in parsed] == [
        ("acme", ACME_TOKEN),
        ("globex", GLOBEX_TOKEN),
        ("acme", ROTATED_TOKEN),
    ]


def test_tenant_tokens_from_the_environment_never_show_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BUGHIVE_TENANT_TOKENS", TOKENS)

    loaded = ServerSettings(_env_file=None)

    assert [t.tenant for t in loaded.tenant_tokens] == ["acme", "globex", "acme"]
    assert loaded.multi_tenant
    for token in (ACME_TOKEN, GLOBEX_TOKEN, ROTATED_TOKEN):
        assert token not in repr(loaded)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (f"acme{ACME_TOKEN}", "entry 1 is not tenant:token"),
        (f"acme:{ACME_TOKEN},globex:short-secret", "entry 2: the token must be at least 16"),
        (f"acme:{ACME_TOKEN},globex:{ACME_TOKEN}", "the same token is given more than once"),
        (f"-acme:{ACME_TOKEN}", "entry 1: a tenant name is"),
    ],
)
def test_malformed_tenant_tokens_are_refused_without_echoing_them(raw: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(tenant_tokens=raw)

    assert problem in str(caught.value)
    assert "short-secret" not in str(caught.value)
    assert ACME_TOKEN not in str(caught.value)


def test_an_empty_tenant_means_single_tenant_mode() -> None:
    loaded = settings(tenant="")

    assert (loaded.tenant, loaded.multi_tenant) == (None, False)


@pytest.mark.parametrize("tenant", ["a b", "x" * 101, "_lead", "a:b", "a,b"])
def test_a_malformed_tenant_name_is_refused(tenant: str) -> None:
    with pytest.raises(ValidationError, match="tenant name"):
        settings(tenant=tenant)


def test_match_token_finds_the_tenant_of_a_token_and_nothing_for_others() -> None:
    principals = [
        (t.token.get_secret_value().encode(), t.tenant) for t in parse_tenant_tokens(TOKENS)
    ]

    assert match_token(GLOBEX_TOKEN, principals) == (True, "globex")
    assert match_token(ROTATED_TOKEN, principals) == (True, "acme")
    assert match_token(GLOBEX_TOKEN[:-1], principals) == (False, None)
    assert match_token("", principals) == (False, None)


def test_request_tenant_refuses_a_call_of_no_tenant_in_multi_tenant_mode() -> None:
    assert request_tenant(None, multi_tenant=False) is None
    assert request_tenant("acme", multi_tenant=True) == "acme"
    with pytest.raises(TenantRequired, match="bound to no tenant"):
        request_tenant(None, multi_tenant=True)


def test_the_principals_tenant_comes_before_the_configured_one() -> None:
    bound = current_tenant.set("globex")
    try:
        assert request_tenant("acme", multi_tenant=True) == "globex"
    finally:
        current_tenant.reset(bound)


def test_tenant_tokens_are_authentication_enough_to_serve_all_interfaces() -> None:
    check_http_settings(settings(transport="http", host="0.0.0.0", tenant_tokens=TOKENS))


def test_the_auth_token_next_to_tenant_tokens_needs_a_tenant_of_its_own() -> None:
    with pytest.raises(InsecureBindError, match="BUGHIVE_AUTH_TOKEN would act as no tenant"):
        check_http_settings(settings(auth_token=SecretStr("x" * 32), tenant_tokens=TOKENS))

    check_http_settings(
        settings(auth_token=SecretStr("x" * 32), tenant_tokens=TOKENS, tenant="initech")
    )


def test_the_auth_token_may_not_also_be_a_tenant_token() -> None:
    with pytest.raises(InsecureBindError, match="also one of BUGHIVE_TENANT_TOKENS"):
        check_http_settings(
            settings(auth_token=SecretStr(ACME_TOKEN), tenant_tokens=TOKENS, tenant="initech")
        )


# --- the middleware -------------------------------------------------------------------


class Recorder:
    """An ASGI app that records the tenant each request is served with, and answers 200."""

    def __init__(self) -> None:
        self.tenants: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.tenants.append(current_tenant.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def request(app: BearerTokenMiddleware, path: str, token: str | None) -> int:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_the_middleware_serves_each_request_as_its_tokens_tenant() -> None:
    recorder = Recorder()
    app = BearerTokenMiddleware(
        recorder, "x" * 32, tenant="initech", tenant_tokens=parse_tenant_tokens(TOKENS)
    )

    statuses = [
        await request(app, "/mcp", ACME_TOKEN),
        await request(app, "/mcp", GLOBEX_TOKEN),
        await request(app, "/mcp", "x" * 32),
        await request(app, "/mcp", ROTATED_TOKEN),
        await request(app, "/mcp", GLOBEX_TOKEN + "x"),
        await request(app, "/mcp", None),
        await request(app, HEALTH_PATH, None),
    ]

    assert statuses == [200, 200, 200, 200, 401, 401, 200]
    assert recorder.tenants == ["acme", "globex", "initech", "acme", None]
    assert current_tenant.get() is None  # nothing outlives its request
