"""The `kimi-agent mcp` sub-command's arguments: argparse only, so `kimi-agent --help` does not
import the tooling or the MCP SDK (the command itself is `kimi_agent.mcp._serve.run`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `mcp serve` to the `kimi-agent` sub-commands (`subparsers` from
    `add_subparsers`); returns the `mcp` parser."""
    mcp = subparsers.add_parser("mcp", help="Model Context Protocol: serve tools to MCP clients")
    commands = mcp.add_subparsers(dest="mcp_command", required=True)
    serve = commands.add_parser("serve", help="serve a module's tools as an MCP server (stdio)")
    serve.add_argument("target", help="MODULE[:ATTR] holding the tools, e.g. kimi_agent_tools")
    serve.add_argument("--deps", default=None,
                       help="MODULE:ATTR: the deps of tools that take a RunContext (a "
                            "zero-argument function is called once)")
    serve.add_argument("--name", default=None, help="the server name (default: the module)")
    serve.add_argument("--allow-approval", dest="allow_approval", action="store_true",
                       help="also serve tools marked requires_approval (the MCP client's own "
                            "confirmation stands in for the approval)")
    return mcp  # type: ignore[no-any-return]
