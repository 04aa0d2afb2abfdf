"""Server settings (``BUGHIVE_*`` environment variables); database settings live in
``db.connection.config.DatabaseConfig``. The README's settings table lists both."""

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bughive_mcp.tenancy import TenantToken, parse_tenant_tokens
from db.connection.tenancy import check_tenant

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BUGHIVE_",
        env_file=".env",
        extra="ignore",
        # A refused value would otherwise be echoed in the error, tokens included.
        hide_input_in_errors=True,
    )

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    auth_token: SecretStr | None = Field(
        default=None, description="Bearer token required by the HTTP transport."
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra browser origins allowed to call the HTTP transport (DNS-rebinding guard).",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra Host header values accepted by the HTTP transport."
    )
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    stateless_http: bool = Field(
        default=False, description="No per-client session state: any replica can answer any call."
    )
    auto_migrate: bool = Field(
        default=True, description="Bring the schema to the newest revision on start."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    output_schemas: Literal["compact", "full"] = Field(
        default="compact",
        description="compact keeps tools/list small for agents; full gives typed clients "
        "complete output schemas.",
    )
    toolsets: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="Comma-separated toolsets: sessions, frontier, bugs, reporting, all.",
    )
    tools: Annotated[list[str] | None, NoDecode] = Field(
        default=None, description="Comma-separated tool names, added to the toolsets."
    )
    exclude_tools: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated tool names never exposed."
    )
    read_only: bool = Field(
        default=False, description="Only read-only tools; database sessions are read-only too."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Leases a page gets before it is set to error."
    )

    tenant: str | None = Field(
        default=None,
        description="Multi-tenant mode: the tenant of every call on stdio (and of "
        "BUGHIVE_AUTH_TOKEN over HTTP).",
    )
    tenant_tokens: Annotated[list[TenantToken], NoDecode] = Field(
        default_factory=list,
        description="Multi-tenant mode over HTTP: comma-separated tenant:token pairs; each "
        "bearer token acts as its tenant.",
    )

    @field_validator("tenant", mode="before")
    @classmethod
    def _tenant_name(cls, value: object) -> object:
        if value == "":
            return None  # BUGHIVE_TENANT= (empty) means unset
        return check_tenant(value) if isinstance(value, str) else value

    @field_validator("tenant_tokens", mode="before")
    @classmethod
    def _tenant_tokens(cls, value: object) -> object:
        return parse_tenant_tokens(value) if isinstance(value, str) else value

    @field_validator(
        "toolsets", "tools", "exclude_tools", "allowed_origins", "allowed_hosts", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def multi_tenant(self) -> bool:
        """Every call is bound to a tenant (row-level security; see ``bughive_mcp.tenancy``)."""
        return self.tenant is not None or bool(self.tenant_tokens)
