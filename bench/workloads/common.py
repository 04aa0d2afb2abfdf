"""Helpers shared by the workloads: timed call loops and tool calls that must succeed."""

import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from mcp import Client
from mcp.types import CallToolResult
from sqlalchemy.engine import URL

from bench.harness import Metrics, Stopwatch, percentile
from bench.postgres import asyncpg_dsn


class BenchError(RuntimeError):
    """A workload could not measure what it meant to (a tool failed, data was wrong)."""


async def call_tool(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool; a failed call stops the bench (an error must never pass for a timing)."""
    result = await client.call_tool(name, arguments)
    if not isinstance(result, CallToolResult) or result.is_error:
        raise BenchError(f"tool {name} failed: {result}")
    content: dict[str, Any] | None = result.structured_content
    if content is None:
        raise BenchError(f"tool {name} returned no structured content")
    return content


async def timed_loop(calls: int, warmup: int, step: Callable[[int], Awaitable[object]]) -> Metrics:
    """``warmup`` untimed calls, then ``calls`` timed ones in sequence: mean, p50 and p99 in ms
    (the mean is total time / calls, i.e. the inverse of throughput)."""
    for index in range(warmup):
        await step(index)
    latencies: list[float] = []
    watch = Stopwatch()
    for index in range(warmup, warmup + calls):
        started = time.perf_counter()
        await step(index)
        latencies.append((time.perf_counter() - started) * 1000)
    total = watch.seconds
    return {
        "mean_ms": total / calls * 1000,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


async def connect(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))
