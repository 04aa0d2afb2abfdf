"""``python -m bench``: run the benchmarks, print the ratio table, write the JSON result.

Examples::

    python -m bench                      # full run (issue 5 sizes; tens of minutes)
    python -m bench --quick              # small sizes: proves the harness runs (CI)
    python -m bench --only 2,5           # selected workloads, by number or key
    python -m bench --server-url postgresql://postgres@/postgres?host=/tmp/pg
"""

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
from sqlalchemy.engine import make_url

from bench.harness import set_progress, table_lines
from bench.runner import WORKLOAD_KEYS, Options, Report, run_benchmarks
from bughive_mcp.command_logging import configure_logging
from db.connection.config import normalize_database_url

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="BugHive MCP vs its floor (raw asyncpg, a trivial MCP tool): ratio table.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per figure (median)")
    parser.add_argument("--seed", type=int, default=5, help="seed of the data generator")
    parser.add_argument(
        "--only", default="", help=f"comma-separated workloads: 1-6 or {', '.join(WORKLOAD_KEYS)}"
    )
    parser.add_argument(
        "--server-url",
        help="PostgreSQL to use (its user must be allowed to CREATE DATABASE); "
        "default: a throwaway embedded PostgreSQL",
    )
    parser.add_argument(
        "--stats-pages",
        type=int,
        help="pages in workload 4's database (default 1,000,000; e.g. 10000000)",
    )
    parser.add_argument("--out", type=Path, help="JSON result path (default bench/results/…)")
    bars = parser.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_true", default=None)
    bars.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def _log_to_file(path: Path) -> None:
    """The product's logging set-up (INFO, its per-call line included, since that cost is part
    of every call), written to a file instead of the terminal."""
    configure_logging("INFO")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().handlers[:] = [handler]


def write_report(report: Report, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def render(report: Report) -> str:
    meta = report.meta
    pg = meta["postgres"]
    lines = [
        f"BugHive MCP benchmarks — {meta['mode']} run, {meta['repeats']} repeats (median), "
        f"{meta['seconds']} s; PostgreSQL {pg['server_version']} "
        f"(synchronous_commit={pg['synchronous_commit']}, fsync={pg['fsync']}, "
        f"shared_buffers={pg['shared_buffers']}); load avg {meta['machine']['load_avg_at_start']}",
        f"data generation: {meta['generation']['rows']:,} rows by COPY in "
        f"{meta['generation']['seconds']} s",
        "",
        *table_lines(report.results),
        "",
    ]
    for result in report.results:
        notes = [f"  - {row.name}: {row.note}" for row in result.rows if row.note]
        if notes:
            lines += [f"{result.title}:", *notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{'quick' if args.quick else 'full'}-{stamp}"
    out: Path = args.out or RESULTS_DIR / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    _log_to_file(out.with_suffix(".log"))
    set_progress(args.progress)
    options = Options(
        quick=args.quick,
        repeats=args.repeats,
        seed=args.seed,
        only=[part.strip() for part in args.only.split(",") if part.strip()],
        server_url=make_url(normalize_database_url(args.server_url)) if args.server_url else None,
        stats_pages=args.stats_pages,
        command=["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
    )
    report = anyio.run(run_benchmarks, options)
    write_report(report, out)
    sys.stdout.write(render(report))
    sys.stdout.write(f"\nresult: {out}\n")
    return 0
