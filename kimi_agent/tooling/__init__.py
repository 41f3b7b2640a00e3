"""Tooling: plain Python functions as tools the model can call.

`@tool` / `Tool` turn a function into a tool whose JSON schema comes from its type hints and
docstring (normalised to Moonshot's schema dialect); `ToolRegistry` holds a set of them;
`RunContext` is what a tool may know about the run that called it. The executor that runs a
reply's calls (concurrently or one by one) is internal to this room.
"""

from __future__ import annotations

from kimi_agent.tooling._records import CallStatus, ToolCallRecord
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._run_context import Handoff, RunContext
from kimi_agent.tooling._tool import Tool, format_result, tool
from kimi_agent.tooling._toolset import Toolset

__all__ = ["CallStatus", "Handoff", "RunContext", "Tool", "ToolCallRecord", "ToolRegistry",
           "Toolset", "format_result", "tool"]
