"""Running ``python -m bughive_mcp`` as a child process, the way a client or an operator does.

The child gets an explicit, minimal environment (an MCP client does not pass its own on), the
source tree under test first on ``PYTHONPATH``, and a scratch working directory, so neither a
developer's ``.env`` nor their ``BUGHIVE_*`` variables can change what is tested.
"""

import os
import sys
from pathlib import Path

from sqlalchemy.engine import URL

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMAND = [sys.executable, "-m", "bughive_mcp"]


def child_env(database_url: URL | None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", str(REPO_ROOT)),
        "PYTHONPATH": str(REPO_ROOT),
        **extra,
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url.render_as_string(hide_password=False)
    return env
