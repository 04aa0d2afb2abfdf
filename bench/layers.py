"""Where one hot call's time goes, layer by layer: ``python -m bench.layers``.

For ``get_pages_to_crawl`` on 10,000 pending pages: the statement raw, inside
``Database.session()`` and through the repository; then the tool built up from the floor
(``ping``, the statement, ``ping`` awaiting the statement) one layer at a time, the variants
taking turns. For a claim on 200,000 pending pages: the textbook statement, BugHive's, and the
repository. Then the tool layer alone, without a database: ``ping`` against a tool of
``get_pages_to_crawl``'s signature returning a ready 10-page answer, on a bare ``MCPServer`` and
on BugHive's, and the same answer as a JSON object with and without its null fields. Each line
is the mean of 1,000 sequential calls after 100 warm-up calls (in the built-up section: the
median of 15 rounds of 200), in one process on a throwaway embedded PostgreSQL (about a
minute). docs/benchmarks.md ("What limits each figure") quotes its output.
"""

import logging
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
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
from bughive_mcp.server import BugHiveServer, shaped_tool
from db.connection.database import Database
from db.page_schemas import PageList, PagePublic
from db.repositories.pages import (
    PageRepository,
    claim_statement,
    frontier_page,
    frontier_page_statement,
)

CALLS = 1_000
WARMUP = 100
ROUNDS = 15
ROUND_CALLS = 200


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

        look = frontier_page_statement(10, 0)

        async def raw() -> None:
            await conn.fetch(look.sql, sid)

        async def in_session() -> None:
            async with database.session() as s:
                await look.fetch(s, session_id=sid)

        async def repository() -> None:
            async with database.session() as s:
                await PageRepository(s).get_pages_to_crawl(sid, 10)

        await timed("the statement, raw asyncpg connection", raw)
        await timed("the statement in Database.session()", in_session)
        await timed("PageRepository.get_pages_to_crawl in Database.session()", repository)
        await built_up(ctx, conn, database, sid)


async def interleaved(steps: list[tuple[str, Callable[[], Awaitable[object]]]]) -> None:
    """Each step timed in ``ROUNDS`` rounds of ``ROUND_CALLS`` calls, the steps taking turns;
    the median round per step (with the quartiles): steps that differ by a few hundredths of
    a millisecond, compared on the same moments of the machine."""
    rounds: dict[str, list[float]] = {label: [] for label, _ in steps}
    for _ in range(ROUNDS):
        for label, step in steps:
            for _ in range(ROUND_CALLS // 10):
                await step()
            started = time.perf_counter()
            for _ in range(ROUND_CALLS):
                await step()
            rounds[label].append((time.perf_counter() - started) / ROUND_CALLS * 1000)
    for label, figures in rounds.items():
        low, middle, high = statistics.quantiles(figures, n=4)
        show(f"  {label:58s} {middle:7.3f} ms  (quartiles {low:.3f}-{high:.3f})")


async def built_up(
    ctx: BenchContext, conn: asyncpg.Connection, database: Database, sid: uuid.UUID
) -> None:
    """The get_pages_to_crawl tool, built up from the composed floor one layer at a time, on
    ``frontier_look``'s database."""
    show(
        "get_pages_to_crawl(limit=10) built up from the floor, 10,000 pending pages "
        f"(median of {ROUNDS} interleaved rounds):"
    )
    statement = frontier_page_statement(10, 0).sql
    answer = ready_answer()

    async def raw() -> None:
        await conn.fetch(statement, sid)

    async def ready_after_statement(session_id: uuid.UUID, limit: int) -> PageList:
        await conn.fetch(statement, session_id)
        return answer

    async def built_from_rows(session_id: uuid.UUID, limit: int) -> PageList:
        return frontier_page(await conn.fetch(statement, session_id), 0, limit)

    async def on_pooled_connection(session_id: uuid.UUID, limit: int) -> PageList:
        async with database.engine.connect() as pooled:
            driver = (await pooled.get_raw_connection()).driver_connection
            assert driver is not None
            rows = await driver.fetch(statement, session_id)
        return frontier_page(rows, 0, limit)

    async def in_unit_of_work(session_id: uuid.UUID, limit: int) -> PageList:
        async with database.session() as s:
            return await PageRepository(s).get_pages_to_crawl(session_id, limit)

    bodies = [
        ("+ BugHive's tool layer, a ready 10-page answer", ready_after_statement),
        ("+ the answer built from the rows (frontier_page)", built_from_rows),
        ("+ a connection checked out of SQLAlchemy's pool", on_pooled_connection),
        ("+ Database.session() and the repository", in_unit_of_work),
    ]
    arguments = {"session_id": str(sid), "limit": 10}
    async with AsyncExitStack() as stack:
        floor = await stack.enter_async_context(Client(trivial_server()))
        composed = await stack.enter_async_context(Client(composed_server(raw)))
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("trivial ping tool", partial(call_tool, floor, "ping", {"n": 1})),
            ("the statement, raw asyncpg connection", raw),
            ("ping awaiting the statement (both floors in one call)",
             partial(call_tool, composed, "ping", {"n": 1})),
        ]  # fmt: skip
        for label, body in bodies:
            server = answering_server("built-up", body, bughive=True)
            client = await stack.enter_async_context(Client(server))
            steps.append((label, partial(call_tool, client, "get_pages_to_crawl", arguments)))
        client = await stack.enter_async_context(Client(ctx.server(database.url)))
        steps.append(
            ("the get_pages_to_crawl tool (+ choosing the unit of work)",
             partial(call_tool, client, "get_pages_to_crawl", arguments))
        )  # fmt: skip
        await interleaved(steps)


async def claim(ctx: BenchContext) -> None:
    async with frontier(ctx, "layers_claim", 200_000) as (conn, database, sid):
        show("claim of 10 pages, 200,000 pending, 1 worker:")

        async def textbook() -> None:
            await conn.fetch(CLAIM, sid, 10, 300.0)

        claiming = claim_statement(10)
        arguments = claiming.arguments({"session_id": sid, "lease_seconds": 300, "max_attempts": 3})

        async def statement() -> None:
            await conn.fetch(claiming.sql, *arguments)

        async def repository() -> None:
            async with database.session() as s:
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


# What a get_pages_to_crawl-shaped tool does for (session_id, limit): its answer.
Body = Callable[[uuid.UUID, int], Awaitable[PageList]]


def answering_server(name: str, body: Body, *, bughive: bool) -> MCPServer[Any]:
    """A server with one tool named and typed like ``get_pages_to_crawl`` that answers with
    ``body``: with ``bughive``, a ``BugHiveServer`` with the tool set up as build_server does;
    without, a bare ``MCPServer``."""

    async def get_pages_to_crawl(
        session_id: uuid.UUID,
        limit: Annotated[int, Field(ge=1, le=100)] = 10,
        skip: Annotated[int, Field(ge=0)] = 0,
    ) -> PageList:
        """Answers with ``body``."""
        return await body(session_id, limit)

    if bughive:
        return BugHiveServer(name, tools=[shaped_tool(get_pages_to_crawl)])
    server: MCPServer[Any] = MCPServer(name)
    server.add_tool(get_pages_to_crawl)
    return server


def ready(answer: PageList) -> Body:
    async def body(session_id: uuid.UUID, limit: int) -> PageList:
        return answer

    return body


async def tool_layer() -> None:
    show("the tool layer alone (no database), get_pages_to_crawl's arguments and answer:")
    answer = ready_answer()
    arguments = {"session_id": str(uuid.uuid4()), "limit": 10}
    servers: list[tuple[str, MCPServer[Any], str, dict[str, Any]]] = [
        ("trivial ping tool", trivial_server(), "ping", {"n": 1}),
        (
            "bare MCPServer, the SDK's full output schema",
            answering_server("bare", ready(answer), bughive=False),
            "get_pages_to_crawl",
            arguments,
        ),
        (
            "BugHiveServer: call boundary, minimal output schema",
            answering_server("bughive", ready(answer), bughive=True),
            "get_pages_to_crawl",
            arguments,
        ),
    ]
    # What leaving null fields out of answers would save (a contract decision not taken): the
    # same answer as a ready JSON object, with and without its nulls.
    for label, exclude_none in [("nulls included", False), ("nulls left out", True)]:
        dumped = answer.model_dump(mode="json", exclude_none=exclude_none)
        servers.append(
            (
                f"BugHiveServer, the answer as a JSON object, {label}",
                json_answering_server(dumped),
                "get_pages_to_crawl",
                arguments,
            )
        )
    for label, server, name, args in servers:
        async with Client(server) as client:

            async def call(client: Client = client, name: str = name, args: Any = args) -> None:
                await call_tool(client, name, args)

            await timed(label, call)


def json_answering_server(answer: dict[str, Any]) -> MCPServer[Any]:
    """A BugHiveServer whose get_pages_to_crawl-shaped tool returns ``answer`` as it is."""

    async def get_pages_to_crawl(
        session_id: uuid.UUID, limit: Annotated[int, Field(ge=1, le=100)] = 10
    ) -> dict[str, Any]:
        """A ready JSON answer."""
        return answer

    return BugHiveServer("json", tools=[shaped_tool(get_pages_to_crawl)])


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
