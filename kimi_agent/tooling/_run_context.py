"""`RunContext`: what a tool may know about the run that called it.

A tool parameter annotated `RunContext[...]` is filled in at call time and never shown to the
model. The context gives the user's `deps`, the run id, the step, the model that asked for the
call, the usage so far, and a way to end the run with a hand-off to a human.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from kimi_agent._usage import RunUsage

DepsT = TypeVar("DepsT", covariant=True)
"""Covariant: a context is read-only, so a tool typed for a protocol accepts richer deps."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """A request to end the run and pass the conversation to a person.

    `reason` is what the calling service routes on (e.g. "complaint"); `summary` is for the
    person who picks the conversation up; `queue` names a team when there are several.
    """

    reason: str
    summary: str = ""
    queue: str | None = None
    tool_call_id: str | None = None


@dataclass(slots=True)
class RunSignals:
    """Things tools ask of the run while it is under way (shared by every context of a run)."""

    handoff: Handoff | None = None
    transfer: str | None = None
    """The agent a `transfer_to_…` tool handed the conversation to."""
    tripped: Exception | None = None
    """A tool guardrail that tripped (the run ends after the step)."""
    events: Any = None
    """The run's event sink when it is streamed (agents run as tools nest their events)."""
    messages: Any = None
    """The run's conversation so far (read-only for guardrails, e.g. to check an answer
    against the tool results)."""
    around: Any = None
    """Wraps each tool execution of the run (its hooks: tracing, durable execution)."""


@dataclass(frozen=True, slots=True)
class RunContext(Generic[DepsT]):
    deps: DepsT
    run_id: str
    step: int = 0
    model: str = ""
    usage: RunUsage = field(default_factory=RunUsage)
    tool_call_id: str | None = None
    tool_name: str | None = None
    signals: RunSignals = field(default_factory=RunSignals, repr=False)

    def for_call(self, tool_name: str, tool_call_id: str) -> RunContext[DepsT]:
        """The context one tool call sees."""
        return replace(self, tool_name=tool_name, tool_call_id=tool_call_id)

    def handoff(self, reason: str, *, summary: str = "", queue: str | None = None) -> Handoff:
        """End the run after this step with a hand-off to a human.

        The tool still returns its result to the model; once every call of the step is done
        the run stops with `RunResult.status == "handoff"` and `RunResult.handoff` set.
        """
        request = Handoff(reason=reason, summary=summary, queue=queue,
                          tool_call_id=self.tool_call_id)
        self.signals.handoff = request
        return request
