"""Guardrails: checks on what comes in, what goes out, and what tools are given and return.

A guardrail is a function `(ctx, text) -> GuardrailResult` (sync or async). It lets the text
pass, rewrites it (e.g. masks a phone number), or trips: the run ends with
`GuardrailTripped`, and the guardrail's `reply` is what the customer is told (stored as the
answer, so the conversation stays valid and shows what was said).

- Input guardrails see the user's message before the first model call; a rewrite is what is
  stored and sent (the original never leaves the process).
- Output guardrails see the final answer before it is stored or returned. On a streamed run
  the text is held back so nothing unchecked reaches the customer: a guardrail that gives
  `holdback(text)` (how many trailing characters could still start a match) lets the rest
  through at once, rewritten; one that does not holds the answer until it is complete.
  That is the latency it costs: at most `holdback` characters, or the whole answer.
- Tool guardrails see a call's arguments (as JSON text) before it runs and its result after;
  a rewrite replaces them (rewritten arguments must stay a JSON object).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic_core import to_jsonable_python

from kimi_agent.agent._hooks import RunHooks, ToolExecution
from kimi_agent.errors import GuardrailTripped
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._tool import format_result
from kimi_agent.wire import Message, dumps

__all__ = ["Guardrail", "GuardrailResult", "StreamGuard", "ToolGuardrails", "guardrail_name",
           "holdbacks_of", "run_guardrails"]

Action = Literal["pass", "rewrite", "trip"]


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """What a guardrail decided. Build with `allow()`, `rewrite(text)` or `trip(reply)`."""

    action: Action = "pass"
    text: str | None = None
    reply: str = ""
    reason: str = ""

    @classmethod
    def allow(cls) -> GuardrailResult:
        return cls("pass")

    @classmethod
    def rewrite(cls, text: str, reason: str = "") -> GuardrailResult:
        return cls("rewrite", text=text, reason=reason)

    @classmethod
    def trip(cls, reply: str, reason: str = "") -> GuardrailResult:
        return cls("trip", reply=reply, reason=reason)


@runtime_checkable
class Guardrail(Protocol):
    """`(ctx, text) -> GuardrailResult | None` (None passes), sync or async."""

    def __call__(self, ctx: RunContext[Any], text: str, /) -> Any: ...


def guardrail_name(guardrail: Any) -> str:
    return str(getattr(guardrail, "name", None) or getattr(guardrail, "__name__", None)
               or type(guardrail).__name__)


async def _decide(guardrail: Any, ctx: RunContext[Any], text: str) -> GuardrailResult:
    result = guardrail(ctx, text)
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return GuardrailResult.allow()
    if not isinstance(result, GuardrailResult):
        raise TypeError(f"guardrail {guardrail_name(guardrail)!r} returned "
                        f"{type(result).__name__}, not a GuardrailResult")
    return result


async def run_guardrails(guardrails: Sequence[Any], ctx: RunContext[Any], text: str, *,
                         kind: str, messages: Sequence[Message] = ()) -> str:
    """`text` after every guardrail in order (each sees the previous one's rewrite).

    Raises:
        GuardrailTripped: a guardrail tripped.
    """
    for guardrail in guardrails:
        result = await _decide(guardrail, ctx, text)
        if result.action == "rewrite" and result.text is not None:
            text = result.text
        elif result.action == "trip":
            name = guardrail_name(guardrail)
            tripped = GuardrailTripped(
                f"{kind} guardrail {name!r} tripped: {result.reason or 'no reason given'}",
                messages=messages, reply=result.reply, guardrail=name, kind=kind,
                reason=result.reason)
            tripped.checked_text = text  # as the guardrails before this one left it
            raise tripped
    return text


def check_arguments(text: str) -> None:
    """A rewritten tool-argument text must still be a JSON object."""
    if not isinstance(json.loads(text), dict):
        raise ValueError("a tool guardrail rewrote the arguments into something that is not a "
                         "JSON object")


class StreamGuard:
    """Holds back streamed answer text until the output guardrails allow it.

    `feed(delta)` returns the text that may be shown now; `finish(full)` the rest, once the
    whole answer passed (or raises `GuardrailTripped`)."""

    def __init__(self, guardrails: Sequence[Any], ctx: RunContext[Any],
                 holdbacks: Sequence[Callable[[str], int]] | None) -> None:
        self._guardrails = guardrails
        self._ctx = ctx
        self._holdbacks = holdbacks     # None: some guardrail cannot stream, hold it all
        self._text = ""
        self._shown = ""

    async def feed(self, delta: str) -> str:
        self._text += delta
        if self._holdbacks is None:
            return ""
        hold = max((h(self._text) for h in self._holdbacks), default=0)
        safe = self._text[: max(0, len(self._text) - hold)]
        if len(safe) <= len(self._shown):
            return ""
        try:
            checked = await run_guardrails(self._guardrails, self._ctx, safe, kind="output")
        except GuardrailTripped:
            self._holdbacks = None      # show nothing more; the end raises
            return ""
        if not checked.startswith(self._shown):
            return ""                   # a rewrite reached back: wait for the end
        out, self._shown = checked[len(self._shown):], checked
        return out

    def finish(self, checked_full: str) -> str:
        """The rest of the checked answer, once the whole of it passed."""
        if checked_full.startswith(self._shown):
            return checked_full[len(self._shown):]
        return ""

    def reset(self) -> None:
        self._text = self._shown = ""


def holdbacks_of(guardrails: Sequence[Any]) -> list[Callable[[str], int]] | None:
    found = []
    for guardrail in guardrails:
        holdback = getattr(guardrail, "holdback", None)
        if holdback is None:
            return None
        found.append(holdback)
    return found



class ToolGuardrails(RunHooks):
    """Tool guardrails as a run hook around each tool execution: the arguments (as JSON
    text) before the call, the result after. A trip stops the call, and the run ends after
    the step with `GuardrailTripped`."""

    def __init__(self, guardrails: tuple[Any, ...]) -> None:
        self.guardrails = guardrails

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        ctx, tool = execution.ctx, execution.tool
        arguments = execution.arguments
        try:
            text = dumps(to_jsonable_python(arguments))
            checked = await run_guardrails(self.guardrails, ctx, text, kind="tool")
            if checked != text:
                check_arguments(checked)
                arguments.clear()
                arguments.update(tool.parse_arguments(checked))
            result = format_result(await proceed())
            return await run_guardrails(self.guardrails, ctx, result, kind="tool")
        except GuardrailTripped as tripped:
            ctx.signals.tripped = tripped
            raise RuntimeError(f"blocked by guardrail {tripped.guardrail!r}") from None
