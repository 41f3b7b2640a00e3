"""What a run leaves behind: the answer, the conversation, the usage, and a record per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from kimi_agent._usage import RunUsage
from kimi_agent.tooling._records import CallStatus, ToolCallRecord
from kimi_agent.tooling._run_context import Handoff
from kimi_agent.wire import CallInfo, Message, Usage

__all__ = ["CallStatus", "PendingApproval", "RunResult", "RunStatus", "StepRecord",
           "ToolCallRecord"]

OutputT = TypeVar("OutputT")

RunStatus = Literal["completed", "pending_approval", "handoff"]


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
    call: CallInfo | None = None
    """What the gateway said about this step's model call: request ids, attempts, the spend
    cap and credits left."""


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A call to a `requires_approval` tool that waits for a person's decision.

    `arguments` are the validated arguments in JSON form (ready to show or send to a UI);
    `raw_arguments` is the model's JSON string as it sent it.
    """

    call_id: str
    tool: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of `Agent.run`.

    `messages` is the conversation as this run read it (the stored history from the window
    start the agent keeps in the session, then this run) without the system prompt;
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
