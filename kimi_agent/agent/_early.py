"""Tools that start while the reply is still streaming.

On kimi-k2-6's streamed path, tool calls arrive one after another: a call's arguments are
complete as soon as they form a whole JSON object (nothing can follow a closed object in valid
JSON), at the latest when the next call's header arrives or the reply finishes. A call to a tool
marked `read_only` (safe to run early and, if need be, twice) starts at once instead of
waiting for the whole reply; calls that need approval or run `sequential`, and anything on
a model that runs calls one by one, wait as before. When the reply is complete, the step
takes the early result of each identical call (same tool, same arguments); if the reply
failed and another was asked for, early results are reused only for identical calls and the
rest are cancelled.
"""

from __future__ import annotations

import json
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


class ObjectEnd:
    """Finds where streamed JSON text closes its top-level object, fragment by fragment, in
    time proportional to the text (strings and their escapes are skipped, braces counted)."""

    __slots__ = ("_depth", "_escape", "_in_string", "closed")

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escape = False
        self.closed = False

    def feed(self, text: str) -> bool:
        """Follow one fragment; True once the top-level object has closed."""
        depth, in_string, escape = self._depth, self._in_string, self._escape
        for char in text:
            if in_string:
                if escape:
                    escape = False
                elif char == "\\":
                    escape = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth <= 0:
                    self.closed = True
                    break
        self._depth, self._in_string, self._escape = depth, in_string, escape
        return self.closed


def _whole_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


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
        self._parts: dict[int, list[Any]] = {}     # index -> [id, name, [parts], ObjectEnd]
        self._closed: set[int] = set()             # indexes whose object closed (taken)
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
                index = delta.index
                if index != self._open:
                    self._complete(self._open)
                    self._open = index
                if index in self._closed:
                    continue        # its object closed: whatever follows is not arguments
                parts = self._parts.setdefault(index, ["", "", [], ObjectEnd()])
                if delta.id:
                    parts[0] = delta.id
                if delta.function is not None:
                    if delta.function.name:
                        parts[1] = delta.function.name
                    fragment = delta.function.arguments
                    if fragment:
                        parts[2].append(fragment)
                        closed = parts[3].feed(fragment)
                        if closed and parts[0] and parts[1] and \
                                _whole_object("".join(parts[2])):
                            self._closed.add(index)
                            self._complete(index)
            if choice.finish_reason is not None:
                self._complete(self._open)
                self._open = None

    def restart(self) -> None:
        """A new reply is coming (a retry or a fallback): forget the partial one; calls
        already started stay available to identical calls of the new reply."""
        self._parts.clear()
        self._closed.clear()
        self._open = None

    def _complete(self, index: int | None) -> None:
        if index is None or index not in self._parts:
            return
        call_id, name, arguments, _ = self._parts.pop(index)
        if not call_id or not name or name not in self._registry:
            return
        tool = self._registry.get(name)
        if not getattr(tool, "read_only", False) or tool.requires_approval or tool.sequential:
            return
        joined = "".join(arguments).strip() or "{}"
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
        return self._started.pop((call.function.name,
                                  (call.function.arguments or "").strip() or "{}"), None)

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

