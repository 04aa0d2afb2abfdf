"""The end-to-end floor: a bare ``MCPServer`` over streamable HTTP whose crawl-loop tools are
raw asyncpg SQL (``bench.floor.RawSql``) — the same SDK, transport and PostgreSQL as BugHive,
without its layers. Run as ``python -m bench.floor_server --port N --database-url URL``.

Tools take the same arguments as BugHive's, so one agent loop drives both servers; results
carry only what the loop needs.
"""

import argparse
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import asyncpg
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from bench.floor import RawSql
from db.connection.config import normalize_database_url


@dataclass
class FloorState:
    pool: asyncpg.Pool


FloorContext = Context[FloorState, Any]


class ClaimedPage(BaseModel):
    id: uuid.UUID
    url: str
    depth: int


class Claimed(BaseModel):
    """As BugHive answers a claim: its pages and their one claim token."""

    items: list[ClaimedPage]
    claim_token: uuid.UUID | None


class Filed(BaseModel):
    id: uuid.UUID
    created: bool


class Analyzed(BaseModel):
    id: uuid.UUID
    status: str


def build_floor_server(dsn: str, pool_size: int = 10) -> MCPServer[FloorState]:
    @asynccontextmanager
    async def lifespan(server: MCPServer[FloorState]) -> AsyncIterator[FloorState]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        try:
            yield FloorState(pool)
        finally:
            await pool.close()

    server: MCPServer[FloorState] = MCPServer("bench-floor-http", lifespan=lifespan)

    def pool_of(ctx: FloorContext) -> asyncpg.Pool:
        state: FloorState = ctx.request_context.lifespan_context
        return state.pool

    @server.tool()
    async def claim_pages_to_crawl(
        session_id: uuid.UUID, ctx: FloorContext, limit: int = 10
    ) -> Claimed:
        """Lease up to ``limit`` discovered pages (raw SKIP LOCKED claim)."""
        async with pool_of(ctx).acquire() as conn:
            rows = await RawSql(conn).claim(session_id, limit)
        return Claimed(
            items=[ClaimedPage(id=r["id"], url=r["url"], depth=r["depth"]) for r in rows],
            claim_token=rows[0]["claim_token"] if rows else None,
        )

    @server.tool()
    async def create_bug(
        session_id: uuid.UUID,
        page_id: uuid.UUID,
        category: str,
        priority: str,
        title: str,
        description: str,
        ctx: FloorContext,
        steps_to_reproduce: list[str] | None = None,
        evidence: list[dict[str, Any]] | None = None,
        confidence: float = 0.5,
    ) -> Filed:
        """File a bug (the repository's statements, raw)."""
        async with pool_of(ctx).acquire() as conn:
            row = await RawSql(conn).create_bug(
                session_id,
                page_id,
                uuid.uuid4().hex * 2,
                category=category,
                priority=priority,
                title=title,
                description=description,
                steps_json=json.dumps(steps_to_reproduce or []),
                evidence_json=json.dumps(evidence or []),
                confidence=confidence,
            )
        return Filed(id=row["id"], created=True)

    @server.tool()
    async def mark_analyzed(
        page_id: uuid.UUID,
        claim_token: uuid.UUID,
        ctx: FloorContext,
        title: str | None = None,
        status_code: int | None = None,
        response_time_ms: int | None = None,
        analysis_result: dict[str, Any] | None = None,
    ) -> Analyzed:
        """Finish a claimed page, fenced by its claim token (raw)."""
        async with pool_of(ctx).acquire() as conn:
            row = await RawSql(conn).mark_analyzed(
                page_id,
                claim_token,
                title,
                None if analysis_result is None else json.dumps(analysis_result),
                response_time_ms,
                status_code,
            )
        if row is None:
            raise ToolError("lease lost")
        return Analyzed(id=row["id"], status=row["status"])

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    server.custom_route("/healthz", methods=["GET"])(healthz)

    return server


async def serve(dsn: str, port: int) -> None:
    server = build_floor_server(dsn)
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    await uvicorn.Server(config).serve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    dsn = normalize_database_url(args.database_url).replace(
        "postgresql+asyncpg://", "postgresql://", 1
    )
    anyio.run(serve, dsn, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
