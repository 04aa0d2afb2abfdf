"""The benchmark harness cannot rot: ``--quick`` runs every workload end to end on the test
run's PostgreSQL, and its JSON result holds a numeric figure, floor and ratio for each row and
no double claim. The ratios themselves are not checked (CI machines are noisy)."""

import json
import math
from pathlib import Path

import pytest

from bench.cli import render, write_report
from bench.runner import WORKLOAD_KEYS, Options, run_benchmarks
from tests.conftest import PostgresServer

pytestmark = pytest.mark.bench


async def test_quick_run_reports_every_workload_with_numbers_and_no_double_claims(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    options = Options(quick=True, server_url=postgres_server.admin_url, workdir=tmp_path)

    report = await run_benchmarks(options)
    out = tmp_path / "quick.json"
    write_report(report, out)
    written = json.loads(out.read_text())

    workloads = {w["key"]: w for w in written["workloads"]}
    assert list(workloads) == list(WORKLOAD_KEYS)
    for key, workload in workloads.items():
        assert workload["rows"], key
        for row in workload["rows"]:
            for figure in ("bughive", "floor", "ratio"):
                value = row[figure]
                assert isinstance(value, int | float), (key, row["name"], figure)
                assert math.isfinite(value) and value > 0, (key, row["name"], figure, value)
    assert workloads["frontier"]["facts"]["double_claims"] == 0
    assert workloads["frontier"]["facts"]["pages_lost_or_extra"] == 0
    assert written["meta"]["generation"]["rows"] > 0
    assert "| workload |" in render(report)


def test_stats_pages_resizes_only_the_statistics_database() -> None:
    """``--stats-pages 10000000`` measures the statistics at 10 million pages; nothing else
    changes size."""
    from bench.cli import _parser
    from bench.context import FULL, QUICK
    from bench.runner import sizes

    assert sizes(Options()) == FULL
    assert sizes(Options(quick=True)) == QUICK
    args = _parser().parse_args(["--only", "4", "--stats-pages", "10000000"])
    resized = sizes(Options(stats_pages=args.stats_pages))
    assert resized.stats_pages == 10_000_000
    assert {**resized.to_json(), "stats_pages": FULL.stats_pages} == FULL.to_json()
