"""Typed events of a streamed run, in the order they happen.

RunStarted → (per step: [FallbackActivated] ReasoningDelta* TextDelta* ToolCallStarted*
ToolCallFinished* StepFinished) → RunFinished. Text that arrives before tool calls in the same
reply is a `TextDelta` but not the answer: the answer is `RunFinished.result.output`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kimi_agent.agent._result import RunResult, StepRecord, ToolCallRecord


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    model: str
    kind: Literal["run_started"] = "run_started"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    step: int
    text: str
    kind: Literal["reasoning_delta"] = "reasoning_delta"


@dataclass(frozen=True, slots=True)
class TextDelta:
    step: int
    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    step: int
    call_id: str
    name: str
    arguments: str
    """Complete: the event comes once the whole call has arrived."""
    kind: Literal["tool_call_started"] = "tool_call_started"


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    step: int
    record: ToolCallRecord
    kind: Literal["tool_call_finished"] = "tool_call_finished"

    @property
    def ok(self) -> bool:
        return self.record.status == "ok"


@dataclass(frozen=True, slots=True)
class FallbackActivated:
    step: int
    from_model: str
    to_model: str
    reason: str
    kind: Literal["fallback_activated"] = "fallback_activated"


@dataclass(frozen=True, slots=True)
class StepFinished:
    step: StepRecord
    kind: Literal["step_finished"] = "step_finished"


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: RunResult[Any]
    kind: Literal["run_finished"] = "run_finished"



@dataclass(frozen=True, slots=True)
class HandoffActivated:
    """The conversation passed from one agent to another (a `transfer_to_…` call); the run
    goes on with the target's instructions and tools."""

    step: int
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class AgentToolEvent:
    """An event of an agent run as a tool (`agent.as_tool()`), nested in the caller's run."""

    step: int
    call_id: str
    agent: str
    event: Any


Event = (
    RunStarted
    | ReasoningDelta
    | TextDelta
    | ToolCallStarted
    | ToolCallFinished
    | FallbackActivated
    | StepFinished
    | RunFinished
    | HandoffActivated
    | AgentToolEvent
)
