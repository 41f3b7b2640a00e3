"""`RunContext`: what a tool may know about the run that called it.

A tool parameter annotated `RunContext[...]` is filled in at call time and never shown to the
model. The context gives the user's `deps`, the run id, the step, the model that asked for the
call, the usage so far, a key that names this very call for deduplication
(`idempotency_key`), and a way to end the run with a hand-off to a human.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kimi_agent._usage import RunUsage

if TYPE_CHECKING:
    from kimi_agent.wire import AssistantMessage

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
    """What a tool may know about the run that called it (see the module docstring).

    `session_id` is the session the run reads and writes (None without one); `reply_id`
    names the model reply whose calls are running (`reply_id(...)` of that reply), so that
    `idempotency_key` stays the same when the same call runs again in another run or process.
    """

    deps: DepsT
    run_id: str
    step: int = 0
    model: str = ""
    usage: RunUsage = field(default_factory=RunUsage)
    tool_call_id: str | None = None
    tool_name: str | None = None
    signals: RunSignals = field(default_factory=RunSignals, repr=False)
    session_id: str | None = None
    reply_id: str | None = None

    def for_call(self, tool_name: str, tool_call_id: str) -> RunContext[DepsT]:
        """The context one tool call sees."""
        # spelled out: dataclasses.replace costs more than the rest of a trivial call
        return RunContext(self.deps, self.run_id, self.step, self.model, self.usage,
                          tool_call_id, tool_name, self.signals, self.session_id,
                          self.reply_id)

    @property
    def idempotency_key(self) -> str:
        """A key naming this tool call, for a side-effecting tool to deduplicate on.

        With a session and the reply known it is `"<session id>:<reply id>:<call id>"`: the
        same whenever this call of this reply runs, in this run, in the run that resumes it
        after an approval, or in another process after a crash; different for a later reply
        even when the model reuses a call id (Moonshot's ids, such as `refund:0`, repeat
        across turns). Without them it is `"<run id>:<step>:<call id>"`, unique to this run.
        Pass it to the payment API or store it with the effect, and skip work already done.

        Raises:
            RuntimeError: the context is not a tool call's (no call id).
        """
        if self.tool_call_id is None:
            raise RuntimeError("idempotency_key belongs to a tool call's context")
        if self.session_id is not None and self.reply_id is not None:
            return f"{self.session_id}:{self.reply_id}:{self.tool_call_id}"
        return f"{self.run_id}:{self.step}:{self.tool_call_id}"

    def handoff(self, reason: str, *, summary: str = "", queue: str | None = None) -> Handoff:
        """End the run after this step with a hand-off to a human.

        The tool still returns its result to the model; once every call of the step is done
        the run stops with `RunResult.status == "handoff"` and `RunResult.handoff` set.
        """
        request = Handoff(reason=reason, summary=summary, queue=queue,
                          tool_call_id=self.tool_call_id)
        self.signals.handoff = request
        return request


def reply_id(calls: Iterable[tuple[str, str, str]], reasoning: str | None = None,
             content: str | None = None) -> str:
    """A short stable name for a model reply: a digest of its tool calls (id, name,
    arguments) with its reasoning and text. The same reply, reloaded from a session in any
    process, gives the same id; two replies differ unless they match byte for byte."""
    payload = json.dumps([list(calls), reasoning or "", content or ""], ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def reply_id_of(message: AssistantMessage) -> str:
    """`reply_id` of an assistant message (as received, or as reloaded from a session)."""
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]
    return reply_id(calls, message.reasoning_content, message.content)
