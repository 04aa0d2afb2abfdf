import sys

from bughive_mcp.cli import main

sys.exit(main())
