"""Where one hot call's time goes, layer by layer: ``python -m bench.layers``.

The same work timed from the bare statement up to the tool — raw asyncpg, then inside
``Database.session()``, then the repository, then the tool through the in-memory client (next
to the trivial ``ping`` tool, alone and awaiting the raw statement) — for
``get_pages_to_crawl`` on 10,000 pending pages and for a claim on 200,000; then the tool layer alone, without a database: ``ping`` against a tool of
``get_pages_to_crawl``'s signature returning a ready 10-page answer, on a bare ``MCPServer`` and
on BugHive's. Each line is the mean of 1,000 sequential calls after 100 warm-up calls, in one
process on a throwaway embedded PostgreSQL (about a minute). docs/benchmarks.md ("What limits
each figure") quotes its output.
"""

import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
import asyncpg
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import Field

from bench.context import QUICK, BenchContext
from bench.datagen import DataGenerator, GenerationLog
from bench.floor import CLAIM, RELEASE_CLAIMS, composed_server, trivial_server
from bench.postgres import BenchPostgres, asyncpg_dsn
from bench.workloads.common import call_tool
from bughive_mcp.server import BugHiveServer, shape_tool
from db.database import Database
from db.driver import driver_connection
from db.repositories.pages import PageRepository, claim_statement, frontier_page_statement
from db.schemas import PageList, PagePublic

CALLS = 1_000
WARMUP = 100


def show(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def timed(label: str, step: Callable[[], Awaitable[object]]) -> None:
    for _ in range(WARMUP):
        await step()
    started = time.perf_counter()
    for _ in range(CALLS):
        await step()
    show(f"  {label:58s} {(time.perf_counter() - started) / CALLS * 1000:7.3f} ms")


@asynccontextmanager
async def frontier(
    ctx: BenchContext, name: str, pending: int
) -> AsyncIterator[tuple[asyncpg.Connection, Database, uuid.UUID]]:
    """A throwaway database holding one session with ``pending`` discovered pages: a raw
    connection to it, BugHive's ``Database`` on it, and the session's id."""
    url = await ctx.postgres.create_database(name)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    database = ctx.database(url)
    try:
        generator = DataGenerator(conn, ctx.seed, ctx.generation)
        session_id = await generator.session()
        await generator.pages(session_id, pending)
        await generator.settle(True)
        yield conn, database, session_id
    finally:
        await database.close()
        await conn.close()
        await ctx.postgres.drop_database(url)


async def frontier_look(ctx: BenchContext) -> None:
    async with frontier(ctx, "layers_look", 10_000) as (conn, database, sid):
        show("get_pages_to_crawl(limit=10), 10,000 pending pages:")

        async def raw() -> None:
            await conn.fetch(frontier_page_statement(10, 0), sid)

        async def in_session() -> None:
            async with database.session(writes=False, single_statement=True) as s:
                await (await driver_connection(s)).fetch(frontier_page_statement(10, 0), sid)

        async def repository() -> None:
            async with database.session(writes=False, single_statement=True) as s:
                await PageRepository(s).get_pages_to_crawl(sid, 10)

        async with (
            Client(ctx.server(database.url)) as client,
            Client(trivial_server()) as floor,
            Client(composed_server(raw)) as composed,
        ):
            arguments = {"session_id": str(sid), "limit": 10}

            async def tool() -> None:
                await call_tool(client, "get_pages_to_crawl", arguments)

            async def ping() -> None:
                await call_tool(floor, "ping", {"n": 1})

            async def ping_with_statement() -> None:
                await call_tool(composed, "ping", {"n": 1})

            await timed("the statement, raw asyncpg connection", raw)
            await timed("the statement in Database.session()", in_session)
            await timed("PageRepository.get_pages_to_crawl in Database.session()", repository)
            await timed("trivial ping tool (in-memory client)", ping)
            await timed("trivial ping tool awaiting the raw statement", ping_with_statement)
            await timed("get_pages_to_crawl tool (in-memory client)", tool)


async def claim(ctx: BenchContext) -> None:
    async with frontier(ctx, "layers_claim", 200_000) as (conn, database, sid):
        show("claim of 10 pages, 200,000 pending, 1 worker:")

        async def textbook() -> None:
            await conn.fetch(CLAIM, sid, 10, 300.0)

        async def statement() -> None:
            await conn.fetch(claim_statement(10), sid, 300, 3)

        async def repository() -> None:
            async with database.session(single_statement=True) as s:
                await PageRepository(s).claim_pages_to_crawl(sid, 10)

        for label, step in [
            ("textbook SKIP LOCKED claim, raw asyncpg (the floor)", textbook),
            ("BugHive's claim statement, raw asyncpg", statement),
            ("PageRepository.claim_pages_to_crawl in Database.session()", repository),
        ]:
            await conn.execute(RELEASE_CLAIMS, sid)
            await timed(label, step)


def ready_answer() -> PageList:
    """A 10-page ``get_pages_to_crawl`` answer, built once."""
    now = datetime.now(UTC)
    session_id = uuid.uuid4()
    empty = dict.fromkeys(PagePublic.model_fields)
    pages = [
        PagePublic.model_validate(
            {
                **empty,
                "id": uuid.uuid4(),
                "session_id": session_id,
                "url": f"https://shop.example/products/{index}",
                "depth": 2,
                "status": "discovered",
                "discovered_at": now,
                "created_at": now,
                "updated_at": now,
                "attempts": 0,
            }
        )
        for index in range(10)
    ]
    return PageList(items=pages, total=100, skip=0, limit=10, has_more=True, next_skip=10)


def answering_server(server: MCPServer[Any], answer: PageList, *, bughive: bool) -> MCPServer[Any]:
    """``server`` with one tool named and typed like ``get_pages_to_crawl`` that returns
    ``answer``; with ``bughive``, its schemas and argument handling set up as build_server does."""

    async def get_pages_to_crawl(
        session_id: uuid.UUID,
        limit: Annotated[int, Field(ge=1, le=100)] = 10,
        skip: Annotated[int, Field(ge=0)] = 0,
    ) -> PageList:
        """A ready answer."""
        return answer

    server.add_tool(get_pages_to_crawl)
    registered = server._tool_manager.get_tool("get_pages_to_crawl")
    if bughive and registered is not None:
        shape_tool(registered)
    return server


async def tool_layer() -> None:
    show("the tool layer alone (no database), get_pages_to_crawl's arguments and answer:")
    answer = ready_answer()
    arguments = {"session_id": str(uuid.uuid4()), "limit": 10}
    servers: list[tuple[str, MCPServer[Any], str, dict[str, Any]]] = [
        ("trivial ping tool", trivial_server(), "ping", {"n": 1}),
        (
            "bare MCPServer, the SDK's full output schema",
            answering_server(MCPServer("bare"), answer, bughive=False),
            "get_pages_to_crawl",
            arguments,
        ),
        (
            "BugHiveServer: call boundary, minimal output schema",
            answering_server(BugHiveServer("bughive"), answer, bughive=True),
            "get_pages_to_crawl",
            arguments,
        ),
    ]
    for label, server, name, args in servers:
        async with Client(server) as client:

            async def call(client: Client = client, name: str = name, args: Any = args) -> None:
                await call_tool(client, name, args)

            await timed(label, call)


async def main() -> None:
    logging.disable(logging.INFO)  # the per-call log line is measured by the bench, not here
    postgres = await anyio.to_thread.run_sync(BenchPostgres.start_embedded)
    try:
        ctx = BenchContext(postgres, QUICK, 1, 5, GenerationLog(), Path("."))
        await frontier_look(ctx)
        await claim(ctx)
        await tool_layer()
    finally:
        await postgres.drop_all()
        await anyio.to_thread.run_sync(postgres.stop)


if __name__ == "__main__":
    anyio.run(main)
