"""Model Context Protocol: any MCP server's tools in an agent, and our tools as an MCP server.

Needs the `mcp` extra (`pip install 'kimi-agent[mcp]'`), the official MCP Python SDK.

- `MCPToolset.stdio(command, args)` / `MCPToolset.http(url, headers)`: a server's tools for
  `Agent(tools=[...])`, beside ordinary tools and registries.
- `kimi-agent mcp serve MODULE[:ATTR]`: a module's `@tool`s served over stdio.
- Errors: `MCPError` and its subclasses (all `KimiAgentError`s).
"""

from __future__ import annotations

try:
    import mcp as _sdk  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("kimi_agent.mcp needs the MCP SDK: pip install 'kimi-agent[mcp]'"
                      ) from error

from kimi_agent.mcp._errors import MCPConnectionError, MCPError, MCPProtocolError, MCPToolError
from kimi_agent.mcp._toolset import MCPToolset

__all__ = ["MCPConnectionError", "MCPError", "MCPProtocolError", "MCPToolError", "MCPToolset"]
