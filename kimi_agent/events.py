"""The typed events of a streamed run (`async for event in run` in `Agent.stream`).

RunStarted → (per step: [FallbackActivated] ReasoningDelta* TextDelta* ToolCallStarted*
ToolCallFinished* [HandoffActivated] StepFinished) → RunFinished; `AgentToolEvent` wraps the
events of an agent run as a tool. `Event` is their union.
"""

from __future__ import annotations

from kimi_agent.agent._events import (
    AgentToolEvent,
    Event,
    FallbackActivated,
    HandoffActivated,
    ReasoningDelta,
    RunFinished,
    RunStarted,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)

__all__ = ["AgentToolEvent", "Event", "FallbackActivated", "HandoffActivated", "ReasoningDelta",
           "RunFinished", "RunStarted", "StepFinished", "TextDelta", "ToolCallFinished",
           "ToolCallStarted"]
