"""The workloads of issue 5 (1-6) and issue 18 (7), one module each; each exposes ``KEY`` and ``run(ctx)``."""
