"""The six workloads of issue 5, one module each; each exposes ``KEY`` and ``run(ctx)``."""
