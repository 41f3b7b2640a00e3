"""kimi-agent: tool-using agents on Moonshot's Kimi models.

Public names are imported lazily, so `import kimi_agent` stays cheap and a program pays only
for the parts it uses. The rooms of the package (see the architecture page of the docs):
`kimi_agent.tooling` (tools and their schemas), `kimi_agent.gateway` (HTTP to the gateway),
`kimi_agent.models` (model profiles and routing), `kimi_agent.sessions` (conversations that
persist), `kimi_agent.agent` (the agent and its loop), `kimi_agent.cli` (the command) and
`kimi_agent.testing` (the gateway simulator); `kimi_agent.wire`, `kimi_agent.events` and
`kimi_agent.errors` hold the protocol types, the stream events and the error classes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The error classes are cheap to import (the standard library only) and users catch them by
# name, so they are bound eagerly: `from kimi_agent import ModelFailedError`.
from kimi_agent import errors as _errors
from kimi_agent.errors import *  # noqa: F403

_EXPORTS: dict[str, str] = {
    "tool": "kimi_agent.tooling._tool",
    "Tool": "kimi_agent.tooling._tool",
    "ToolRegistry": "kimi_agent.tooling._registry",
    "RunContext": "kimi_agent.tooling._run_context",
    "Handoff": "kimi_agent.tooling._run_context",
    "GatewayClient": "kimi_agent.gateway._client",
    "RetryPolicy": "kimi_agent.gateway._retry",
    "ConcurrencyLimiter": "kimi_agent.gateway._limiter",
    "FairLimiter": "kimi_agent.gateway._limiter",
    "CallInfo": "kimi_agent.wire",
    "ModelProfile": "kimi_agent.models._profiles",
    "ModelPrice": "kimi_agent.models._profiles",
    "register_model": "kimi_agent.models._profiles",
    "ModelRouter": "kimi_agent.models._router",
    "Agent": "kimi_agent.agent._agent",
    "RunHooks": "kimi_agent.agent._hooks",
    "GuardrailResult": "kimi_agent.agent._guardrails",
    "AgentHandoff": "kimi_agent.agent._handoffs",
    "RunResult": "kimi_agent.agent._result",
    "StepRecord": "kimi_agent.agent._result",
    "ToolCallRecord": "kimi_agent.tooling._records",
    "PendingApproval": "kimi_agent.agent._result",
    "RunUsage": "kimi_agent._usage",
    "UsageLimits": "kimi_agent._usage",
    "Session": "kimi_agent.sessions._protocol",
    "MemorySession": "kimi_agent.sessions._protocol",
    "SQLiteSession": "kimi_agent.sessions._sqlite",
    "SQLiteStore": "kimi_agent.sessions._sqlite",
    "TrimPolicy": "kimi_agent.sessions._trim",
    "KeepRecentTurns": "kimi_agent.sessions._trim",
    "CacheAwareTrim": "kimi_agent.sessions._trim",
    "configure_logging": "kimi_agent._logging",
    "instrument": "kimi_agent.tracing",
}

__all__ = [
    "Agent",
    "AgentHandoff",
    "CacheAwareTrim",
    "CallInfo",
    "ConcurrencyLimiter",
    "FairLimiter",
    "GatewayClient",
    "GuardrailResult",
    "Handoff",
    "KeepRecentTurns",
    "MemorySession",
    "ModelPrice",
    "ModelProfile",
    "ModelRouter",
    "PendingApproval",
    "RetryPolicy",
    "RunContext",
    "RunHooks",
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
    "instrument",
    "register_model",
    "tool",
]
__all__ += _errors.__all__

if TYPE_CHECKING:
    from kimi_agent._logging import configure_logging
    from kimi_agent._usage import RunUsage, UsageLimits
    from kimi_agent.agent._agent import Agent
    from kimi_agent.agent._guardrails import GuardrailResult
    from kimi_agent.agent._handoffs import AgentHandoff
    from kimi_agent.agent._hooks import RunHooks
    from kimi_agent.agent._result import PendingApproval, RunResult, StepRecord
    from kimi_agent.gateway._client import GatewayClient
    from kimi_agent.gateway._limiter import ConcurrencyLimiter, FairLimiter
    from kimi_agent.gateway._retry import RetryPolicy
    from kimi_agent.models._profiles import ModelPrice, ModelProfile, register_model
    from kimi_agent.models._router import ModelRouter
    from kimi_agent.sessions._protocol import MemorySession, Session
    from kimi_agent.sessions._sqlite import SQLiteSession, SQLiteStore
    from kimi_agent.sessions._trim import CacheAwareTrim, KeepRecentTurns, TrimPolicy
    from kimi_agent.tooling._records import ToolCallRecord
    from kimi_agent.tooling._registry import ToolRegistry
    from kimi_agent.tooling._run_context import Handoff, RunContext
    from kimi_agent.tooling._tool import Tool, tool
    from kimi_agent.tracing import instrument
    from kimi_agent.wire import CallInfo


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
