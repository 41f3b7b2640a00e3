"""Tools that start while the reply is still streaming.

On kimi-k2-6's streamed path, tool calls arrive one after another: a call's arguments are
complete as soon as the next call's header arrives, or the reply finishes. A call to a tool
marked `read_only` (safe to run early and, if need be, twice) starts at once instead of
waiting for the whole reply; calls that need approval or run `sequential`, and anything on
a model that runs calls one by one, wait as before. When the reply is complete, the step
takes the early result of each identical call (same tool, same arguments); if the reply
failed and another was asked for, early results are reused only for identical calls and the
rest are cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from kimi_agent.tooling._executor import OnCall, ToolExecutor
from kimi_agent.tooling._records import ToolCallRecord
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.wire import ChatCompletionChunk, FunctionCall, ToolCall


@dataclass(slots=True)
class Started:
    """A call that started early; `record` once it is done."""

    call: ToolCall
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    record: ToolCallRecord | None = None


class EarlyStarter:
    """Watches a streamed reply and starts complete calls of read-only tools."""

    def __init__(self, group: anyio.abc.TaskGroup, registry: ToolRegistry,
                 executor: ToolExecutor, context: Callable[[], RunContext[Any]],
                 on_call: OnCall | None, parallel_models: frozenset[str]) -> None:
        self._group = group
        self._registry = registry
        self._executor = executor
        self._context = context
        self._on_call = on_call
        self._parallel_models = parallel_models
        self._parts: dict[int, list[Any]] = {}     # index -> [id, name, [argument parts]]
        self._open: int | None = None              # the index whose arguments still grow
        self._started: dict[tuple[str, str], Started] = {}
        self._reply_id: str | None = None
        self._stopped = False

    def stop(self) -> None:
        """Start nothing more in this step (the step fell over to a model that runs its calls
        one by one); calls already started stay available."""
        self._stopped = True

    def feed(self, chunk: ChatCompletionChunk) -> None:
        """Follow one chunk; start the calls it completes."""
        if self._stopped or (chunk.model and chunk.model not in self._parallel_models):
            return
        if chunk.id and chunk.id != self._reply_id:
            if self._reply_id is not None:
                self.restart()
            self._reply_id = chunk.id
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                if delta.index != self._open:
                    self._complete(self._open)
                    self._open = delta.index
                parts = self._parts.setdefault(delta.index, ["", "", []])
                if delta.id:
                    parts[0] = delta.id
                if delta.function is not None:
                    if delta.function.name:
                        parts[1] = delta.function.name
                    if delta.function.arguments:
                        parts[2].append(delta.function.arguments)
            if choice.finish_reason is not None:
                self._complete(self._open)
                self._open = None

    def restart(self) -> None:
        """A new reply is coming (a retry or a fallback): forget the partial one; calls
        already started stay available to identical calls of the new reply."""
        self._parts.clear()
        self._open = None

    def _complete(self, index: int | None) -> None:
        if index is None or index not in self._parts:
            return
        call_id, name, arguments = self._parts.pop(index)
        if not call_id or not name or name not in self._registry:
            return
        tool = self._registry.get(name)
        if not getattr(tool, "read_only", False) or tool.requires_approval or tool.sequential:
            return
        joined = "".join(arguments) or "{}"
        key = (name, joined)
        if key in self._started:
            return
        started = Started(ToolCall(id=call_id, function=FunctionCall(name=name,
                                                                      arguments=joined)))
        self._started[key] = started
        self._group.start_soon(self._run, started)

    async def _run(self, started: Started) -> None:
        try:
            with started.scope:
                started.record = await self._executor.run_call(
                    started.call, self._context(), on_call=self._on_call)
        finally:
            started.done.set()

    def claim(self, call: ToolCall) -> Started | None:
        """The early start of a call identical to `call`, if there is one (taken once)."""
        return self._started.pop((call.function.name, call.function.arguments or "{}"), None)

    @staticmethod
    async def result(started: Started, call: ToolCall) -> ToolCallRecord | None:
        """The record of a claimed early call once it is done, under `call`'s id (None if it
        was cancelled before it finished)."""
        await started.done.wait()
        record = started.record
        if record is not None and record.call_id != call.id:
            record.call_id = call.id    # the same call, under the id of the reply that stays
        return record

    def discard(self) -> None:
        """Cancel the early calls no reply claimed."""
        for started in self._started.values():
            started.scope.cancel()
        self._started.clear()

