"""`RunConfig`: what a run needs of its agent, as one small read-only object.

The agent builds it once; every run of the agent reads it and nothing else of the agent, so
knowledge flows one way (agent → loop) and a run cannot change the agent under other runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kimi_agent._logging import EventLogger
from kimi_agent._usage import UsageLimits
from kimi_agent.agent._handoffs import AgentHandoff
from kimi_agent.agent._hooks import RunHooks
from kimi_agent.agent._output import OutputSpec
from kimi_agent.agent._request import RequestParts
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.models._router import ModelRouter
from kimi_agent.sessions._trim import TrimPolicy
from kimi_agent.tooling._executor import ToolExecutor
from kimi_agent.tooling._registry import ToolRegistry


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The configuration one run reads: routing, tools, request parts, limits, hooks."""

    name: str
    router: ModelRouter
    registry: ToolRegistry
    executor: ToolExecutor
    request: RequestParts
    output: OutputSpec[Any] | None
    max_steps: int
    tool_retries: int
    output_retries: int
    usage_limits: UsageLimits
    max_tokens: int | None
    trim_policy: TrimPolicy
    logger: EventLogger | None
    hooks: RunHooks | None
    handoffs: dict[str, AgentHandoff] = field(default_factory=dict)
    """Hand-off targets by agent name (filled by `Agent(handoffs=...)` / `add_handoff`)."""
    input_guardrails: tuple[Any, ...] = ()
    output_guardrails: tuple[Any, ...] = ()

    def profile_named(self, name: str | None) -> ModelProfile:
        """The profile of a model that answered earlier (the primary when unknown)."""
        fallback = self.router.fallback
        if fallback is not None and name == fallback.name:
            return fallback
        return self.router.primary
