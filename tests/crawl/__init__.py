"""The crawl loop on a realistic generated site, driven through the MCP client (issue 18)."""
