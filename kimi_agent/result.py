"""What a run leaves behind: the answer, the conversation, the usage, and a record per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from kimi_agent.run_context import Handoff
from kimi_agent.usage import RunUsage
from kimi_agent.wire import Message, Usage

OutputT = TypeVar("OutputT")

CallStatus = Literal["ok", "error", "pending_approval", "rejected"]
RunStatus = Literal["completed", "pending_approval", "handoff"]


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of a step: what the model asked, what came back, how long it took."""

    call_id: str
    name: str
    arguments: str
    """The model's arguments as it sent them (a JSON string)."""
    status: CallStatus = "ok"
    result: str = ""
    """What went back to the model in the tool message."""
    error: str | None = None
    error_type: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@dataclass(slots=True)
class StepRecord:
    """One model call and the tool calls it asked for."""

    index: int
    model: str
    finish_reason: str | None
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage | None = None
    latency: float = 0.0
    fallback_reason: str | None = None
    """Why this step was answered by the fallback model, when it was."""


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A call to a `requires_approval` tool that waits for a person's decision."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of `Agent.run`.

    `messages` is the whole conversation (history + this run) without the system prompt;
    `new_messages` only what this run added. `status` says why the run ended: an answer, calls
    waiting for approval (`pending_approvals`), or a hand-off to a human (`handoff`); in the
    last two cases there is no answer yet (`output` is "" for text, None for structured).
    """

    output: OutputT
    run_id: str
    messages: list[Message]
    new_messages: list[Message]
    usage: RunUsage
    steps: list[StepRecord]
    status: RunStatus = "completed"
    pending_approvals: list[PendingApproval] = field(default_factory=list)
    handoff: Handoff | None = None
    finish_reason: str | None = None

    @property
    def model(self) -> str | None:
        """The model that answered the last step."""
        return self.steps[-1].model if self.steps else None
