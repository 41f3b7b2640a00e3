"""kimi-agent: tool-using agents on Moonshot's Kimi models.

Public names are imported lazily, so `import kimi_agent` stays cheap and a program pays only
for the parts it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# `tool` is also the name of the submodule `kimi_agent.tool`: importing that submodule would
# rebind the package attribute to the module, so the decorator is bound here, eagerly.
from kimi_agent.tool import Tool, ToolRegistry, tool

_EXPORTS: dict[str, str] = {
    # tools
    "RunContext": "kimi_agent.run_context",
    "Handoff": "kimi_agent.run_context",
    # the gateway
    "GatewayClient": "kimi_agent.gateway",
    "RetryPolicy": "kimi_agent.retry",
    "ModelProfile": "kimi_agent.models",
    "register_model": "kimi_agent.models",
    # the loop
    "Agent": "kimi_agent.agent",
    "RunResult": "kimi_agent.result",
    "StepRecord": "kimi_agent.result",
    "ToolCallRecord": "kimi_agent.result",
    "PendingApproval": "kimi_agent.result",
    "ModelRouter": "kimi_agent.router",
    "RunUsage": "kimi_agent.usage",
    "UsageLimits": "kimi_agent.usage",
    # sessions
    "Session": "kimi_agent.sessions",
    "MemorySession": "kimi_agent.sessions",
    "SQLiteSession": "kimi_agent.sessions",
    "SQLiteStore": "kimi_agent.sqlite_session",
    "TrimPolicy": "kimi_agent.context",
    "KeepRecentTurns": "kimi_agent.context",
    # logs
    "configure_logging": "kimi_agent.log",
}

__all__ = [
    "Agent",
    "GatewayClient",
    "Handoff",
    "KeepRecentTurns",
    "MemorySession",
    "ModelProfile",
    "ModelRouter",
    "PendingApproval",
    "RetryPolicy",
    "RunContext",
    "RunResult",
    "RunUsage",
    "SQLiteSession",
    "SQLiteStore",
    "Session",
    "StepRecord",
    "Tool",
    "ToolCallRecord",
    "ToolRegistry",
    "TrimPolicy",
    "UsageLimits",
    "__version__",
    "configure_logging",
    "register_model",
    "tool",
]

if TYPE_CHECKING:
    from kimi_agent.agent import Agent
    from kimi_agent.context import KeepRecentTurns, TrimPolicy
    from kimi_agent.gateway import GatewayClient
    from kimi_agent.log import configure_logging
    from kimi_agent.models import ModelProfile, register_model
    from kimi_agent.result import PendingApproval, RunResult, StepRecord, ToolCallRecord
    from kimi_agent.retry import RetryPolicy
    from kimi_agent.router import ModelRouter
    from kimi_agent.run_context import Handoff, RunContext
    from kimi_agent.sessions import MemorySession, Session, SQLiteSession
    from kimi_agent.sqlite_session import SQLiteStore
    from kimi_agent.usage import RunUsage, UsageLimits


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
