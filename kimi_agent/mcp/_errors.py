"""The errors of `kimi_agent.mcp`, all `KimiAgentError`s.

Raised inside a tool call they become a result the model reads (the executor turns every
failure into one); raised from `MCPToolset.tools()` (at the start of a run, or from
`async with toolset:`) they reach the caller.
"""

from __future__ import annotations

from kimi_agent.errors import KimiAgentError, ToolCallError

__all__ = ["MCPConnectionError", "MCPError", "MCPProtocolError", "MCPToolError"]


class MCPError(KimiAgentError):
    """Base class of the errors about MCP servers; `server` names the server."""

    def __init__(self, message: str, *, server: str = "") -> None:
        super().__init__(message)
        self.server = server


class MCPConnectionError(MCPError):
    """The server could not be started or reached, or the connection was lost.

    A lost connection is reopened on the next call; a call that was in flight when it was
    lost may or may not have run on the server, so it is never sent again by itself.
    """


class MCPProtocolError(MCPError):
    """The server answered a request with a protocol error (`code` is the JSON-RPC code)
    or with a result that does not fit the protocol."""

    def __init__(self, message: str, *, server: str = "", code: int | None = None) -> None:
        super().__init__(message, server=server)
        self.code = code


class MCPToolError(MCPError, ToolCallError):
    """The tool ran and reported a failure (`isError: true`); `message` is its text, for
    the model to read."""

    def __init__(self, tool_name: str, message: str, *, server: str = "") -> None:
        ToolCallError.__init__(self, tool_name, message)
        self.server = server
