"""Runs in the AG-UI protocol: our records as the `ag-ui-protocol` package's events.

AG-UI front ends (CopilotKit and others) `POST` a `RunAgentInput` and read Server-Sent
Events. We take the newest user message of the input as the customer's message (the
session comes from the customer's token, never from `threadId`: `threadId` in the events
we send is the session id) and translate each record of the run:

| record | AG-UI events |
| --- | --- |
| `run_started` | `RUN_STARTED` |
| `reasoning_delta` (if visible) | `REASONING_START`, `REASONING_MESSAGE_*`, `REASONING_END` |
| `text_delta` | `TEXT_MESSAGE_START` (once per step), `TEXT_MESSAGE_CONTENT` |
| `tool_call_started` | `TOOL_CALL_START`, `TOOL_CALL_ARGS` (if visible), `TOOL_CALL_END` |
| `tool_call_finished` | `TOOL_CALL_RESULT` (the result when visible, else the call's status) |
| `step_finished` | closes what the step opened, `STEP_FINISHED` (`STEP_STARTED` opens a step) |
| `approval_requested`, `handoff`, `usage` | `CUSTOM` events of those names |
| `done` | `RUN_FINISHED`, with an `interrupt` outcome while calls wait for approval |
| `error` | `RUN_ERROR` |
"""

from __future__ import annotations

from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    Interrupt,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

from kimi_agent.web._errors import WebError
from kimi_agent.web._views import Record

__all__ = ["AguiTranslator", "encode", "user_text"]

_ENCODER = EventEncoder()


def encode(event: BaseEvent) -> str:
    """One event as an SSE frame (the package's own encoder)."""
    return _ENCODER.encode(event)


def user_text(run_input: RunAgentInput) -> str:
    """The newest user message of an AG-UI input, as text.

    Raises:
        WebError: the input has no user message with text (422).
    """
    for message in reversed(run_input.messages):
        if getattr(message, "role", None) != "user":
            continue
        content: Any = message.content
        if isinstance(content, str):
            text = content
        else:
            text = "".join(getattr(part, "text", "") or "" for part in content
                           if getattr(part, "type", None) == "text")
        if text.strip():
            return text.strip()
    raise WebError(422, "no_user_message", "the AG-UI input has no user message with text")


class AguiTranslator:
    """Turns the (viewer-filtered) records of one run into AG-UI events, in order."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self._step: int | None = None
        self._text: str | None = None
        self._reasoning: str | None = None
        self._pending: list[Record] = []
        self._usage: TokenUsage | None = None

    def feed(self, record: Record) -> list[BaseEvent]:
        kind = record["kind"]
        handler = getattr(self, f"_on_{kind}", None)
        return handler(record) if handler is not None else []

    # ---------------------------------------------------------------- helpers

    def _enter_step(self, step: int) -> list[BaseEvent]:
        if self._step == step:
            return []
        out = self._close_step() if self._step is not None else []
        self._step = step
        return [*out, StepStartedEvent(step_name=f"step-{step}")]

    def _close_text(self) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        if self._text is not None:
            out.append(TextMessageEndEvent(message_id=self._text))
            self._text = None
        return out

    def _close_reasoning(self) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        if self._reasoning is not None:
            out += [ReasoningMessageEndEvent(message_id=self._reasoning),
                    ReasoningEndEvent(message_id=self._reasoning)]
            self._reasoning = None
        return out

    def _close_step(self) -> list[BaseEvent]:
        out = [*self._close_reasoning(), *self._close_text()]
        if self._step is not None:
            out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
            self._step = None
        return out

    # ---------------------------------------------------------------- records

    def _on_run_started(self, record: Record) -> list[BaseEvent]:
        return [RunStartedEvent(thread_id=self.thread_id, run_id=self.run_id,
                                metadata={"kimi_agent_run_id": record["run_id"],
                                          "model": record["model"]})]

    def _on_reasoning_delta(self, record: Record) -> list[BaseEvent]:
        out = self._enter_step(record["step"])
        if self._reasoning is None:
            self._reasoning = f"{self.run_id}-r{record['step']}"
            out += [ReasoningStartEvent(message_id=self._reasoning),
                    ReasoningMessageStartEvent(message_id=self._reasoning)]
        out.append(ReasoningMessageContentEvent(message_id=self._reasoning,
                                                delta=record["text"]))
        return out

    def _on_text_delta(self, record: Record) -> list[BaseEvent]:
        if not record["text"]:
            return []
        out = self._enter_step(record["step"])
        out += self._close_reasoning()
        if self._text is None:
            self._text = f"{self.run_id}-m{record['step']}"
            out.append(TextMessageStartEvent(message_id=self._text, role="assistant"))
        out.append(TextMessageContentEvent(message_id=self._text, delta=record["text"]))
        return out

    def _on_tool_call_started(self, record: Record) -> list[BaseEvent]:
        out = self._enter_step(record["step"])
        parent = self._text
        out += [*self._close_reasoning(), *self._close_text()]
        out.append(ToolCallStartEvent(tool_call_id=record["call_id"],
                                      tool_call_name=record["name"], parent_message_id=parent,
                                      metadata={"label": record.get("label")}))
        if record.get("arguments"):
            out.append(ToolCallArgsEvent(tool_call_id=record["call_id"],
                                         delta=record["arguments"]))
        out.append(ToolCallEndEvent(tool_call_id=record["call_id"]))
        return out

    def _on_tool_call_finished(self, record: Record) -> list[BaseEvent]:
        out = self._enter_step(record["step"])
        content = record.get("result")
        if not isinstance(content, str):
            content = record["status"]
        out.append(ToolCallResultEvent(message_id=f"{self.run_id}-t{record['call_id']}",
                                       tool_call_id=record["call_id"], content=content,
                                       role="tool", metadata={"status": record["status"]}))
        return out

    def _on_step_finished(self, record: Record) -> list[BaseEvent]:
        return self._close_step()

    def _custom(self, name: str, record: Record) -> list[BaseEvent]:
        value = {k: v for k, v in record.items() if k != "kind"}
        return [*self._close_step(), CustomEvent(name=name, value=value)]

    def _on_approval_requested(self, record: Record) -> list[BaseEvent]:
        self._pending = list(record["pending"])
        return self._custom("approval_requested", record)

    def _on_handoff(self, record: Record) -> list[BaseEvent]:
        return self._custom("handoff", record)

    def _on_usage(self, record: Record) -> list[BaseEvent]:
        self._usage = TokenUsage(model=record.get("model"),
                                 input_tokens=record["prompt_tokens"],
                                 output_tokens=record["completion_tokens"],
                                 total_tokens=record["prompt_tokens"]
                                 + record["completion_tokens"],
                                 cached_input_tokens=record["cached_tokens"])
        return self._custom("usage", record)

    def _on_done(self, record: Record) -> list[BaseEvent]:
        outcome: RunFinishedSuccessOutcome | RunFinishedInterruptOutcome
        pending = self._pending
        if record["status"] == "pending_approval" and pending:
            outcome = RunFinishedInterruptOutcome(interrupts=[
                Interrupt(id=p["call_id"], reason="tool_approval", tool_call_id=p["call_id"],
                          message=p.get("label"), metadata={"tool": p["tool"]})
                for p in pending])
        else:
            outcome = RunFinishedSuccessOutcome()
        usage = self._usage
        return [*self._close_step(),
                RunFinishedEvent(thread_id=self.thread_id, run_id=self.run_id,
                                 result={"status": record["status"],
                                         "output": record["output"]},
                                 outcome=outcome, usage=[usage] if usage else None)]

    def _on_error(self, record: Record) -> list[BaseEvent]:
        return [*self._close_step(),
                RunErrorEvent(message=record["message"], code=record["code"])]
