"""The typed events of a streamed run (`async for event in run` in `Agent.stream`).

RunStarted → (per step: [FallbackActivated] ReasoningDelta* TextDelta* ToolCallStarted*
ToolCallFinished* StepFinished) → RunFinished. `Event` is their union.
"""

from __future__ import annotations

from kimi_agent.agent._events import (
    Event,
    FallbackActivated,
    ReasoningDelta,
    RunFinished,
    RunStarted,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)

__all__ = ["Event", "FallbackActivated", "ReasoningDelta", "RunFinished", "RunStarted",
           "StepFinished", "TextDelta", "ToolCallFinished", "ToolCallStarted"]
