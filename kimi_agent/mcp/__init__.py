"""Model Context Protocol: any MCP server's tools in an agent, and our tools as an MCP server.

Needs the `mcp` extra (`pip install 'kimi-agent[mcp]'`), the official MCP Python SDK.

- `MCPToolset.stdio(command, args)` / `MCPToolset.http(url, headers)`: a server's tools for
  `Agent(tools=[...])`, beside ordinary tools and registries.
- `kimi-agent mcp serve MODULE[:ATTR]`: a module's `@tool`s served over stdio.
- Errors: `MCPError` and its subclasses (all `KimiAgentError`s).

Names are imported on first use, so `kimi-agent --help` does not pay for the SDK; without
the SDK installed, using one raises `ImportError` saying which extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MCPConnectionError", "MCPError", "MCPProtocolError", "MCPToolError", "MCPToolset"]

_EXPORTS = {
    "MCPToolset": "kimi_agent.mcp._toolset",
    "MCPError": "kimi_agent.mcp._errors",
    "MCPConnectionError": "kimi_agent.mcp._errors",
    "MCPProtocolError": "kimi_agent.mcp._errors",
    "MCPToolError": "kimi_agent.mcp._errors",
}

if TYPE_CHECKING:
    from kimi_agent.mcp._errors import (
        MCPConnectionError,
        MCPError,
        MCPProtocolError,
        MCPToolError,
    )
    from kimi_agent.mcp._toolset import MCPToolset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent.mcp' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("mcp", "mcp_types"):
            raise
        raise ImportError("kimi_agent.mcp needs the MCP SDK: pip install 'kimi-agent[mcp]'"
                          ) from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
