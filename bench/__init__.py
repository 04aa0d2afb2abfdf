"""Benchmarks of BugHive MCP against the floor it stands on.

Every figure is measured side by side with a floor in the same run — raw ``asyncpg`` against the
same PostgreSQL, and a trivial tool over the same MCP transport — so the ratios hold on a noisy
machine even when absolute times do not. ``python -m bench --help`` lists the options;
``docs/benchmarks.md`` has a full run and what limits each figure.
"""
