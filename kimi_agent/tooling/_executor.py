"""`ToolExecutor`: runs the tool calls of one model reply.

Runs on asyncio. In parallel mode (kimi-k2-6) the calls of a reply start together (an
`asyncio.gather`, bounded by `max_parallel`);
a tool marked `sequential` runs alone, in its place. In sequential mode (kimi-k2-5) the calls
run one after another in the order given. Either way the records come back in the order of
the calls. Every failure (unknown tool, bad arguments, an exception, a timeout) becomes a
result the model can read and act on; only the per-tool retry budget ends a run. Calls to
tools that need approval are not run: they come back `pending_approval`.

`run_call` runs ONE call and returns its record: the entry point for starting a call as soon
as its arguments are complete, while the rest of the reply still streams (for tools marked
`read_only`; which calls may start early is the loop's decision).

Guarantees, whatever the tools do: every call gets a finished record (a call the step could
not finish is a failed call, never an `ok` with an empty result); a tool that raises
`CancelledError` without being cancelled is a tool error; a sync tool past its timeout may
still be working in its thread, so the model is told its outcome is unknown and must not be
repeated (`ToolCallRecord.outcome_unknown`); results are text UTF-8 can carry, cut at
`max_result_chars` with a note saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kimi_agent._logging import EventLogger, resolve
from kimi_agent.errors import ToolCallError, ToolTimeoutError
from kimi_agent.tooling._arguments import clean_text
from kimi_agent.tooling._records import ToolCallRecord
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._tool import Tool, format_result
from kimi_agent.wire import ToolCall

__all__ = ["APPROVAL_PENDING_TEXT", "DEFAULT_MAX_RESULT_CHARS", "OnCall", "ToolExecutor",
           "timeout_message"]

OnCall = Callable[[str, Any], Awaitable[None]]
"""Called with ("started", ToolCall) and ("finished", ToolCallRecord) as calls progress."""

AroundTool = Callable[[RunContext[Any], Tool, dict[str, Any], Callable[[], Awaitable[Any]]],
                     Awaitable[Any]]
"""Wraps one tool execution (tracing, durable execution): gets the call's context, the tool,
its validated arguments and `proceed`; returns what `proceed` returns. A run sets it on its
`RunSignals.around`; the executor calls it around each execution when it is set."""

APPROVAL_PENDING_TEXT = "waiting for human approval"
DEFAULT_MAX_RESULT_CHARS = 100_000
UNKNOWN_OUTCOME = "timeout_unknown_outcome"


class _StrayCancel(Exception):
    """A tool raised CancelledError although nobody cancelled it."""

    def __str__(self) -> str:
        return "the tool raised CancelledError without being cancelled"


class ToolExecutor:
    """Runs tool calls against a registry; one executor serves every run of an agent.

    `default_timeout` (seconds, None for none) applies to tools without their own;
    `max_result_chars` caps each result unless the tool sets its own cap (None: no cap).
    The agent sets it from `Agent(max_tool_result_chars=...)`.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        max_parallel: int = 16,
        default_timeout: float | None = 60.0,
        max_result_chars: int | None = DEFAULT_MAX_RESULT_CHARS,
        logger: EventLogger | None = None,
    ) -> None:
        """An executor for `registry` (see the class docstring for the options).

        Raises:
            ValueError: `max_parallel` below 1 or `max_result_chars` below 1.
        """
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        if max_result_chars is not None and max_result_chars < 1:
            raise ValueError("max_result_chars must be at least 1 (or None for no cap)")
        self.registry = registry
        self.max_parallel = max_parallel
        self.default_timeout = default_timeout
        self.max_result_chars = max_result_chars
        self._logger = logger

    async def execute(
        self,
        calls: Sequence[ToolCall],
        ctx: RunContext[Any],
        *,
        parallel: bool,
        on_call: OnCall | None = None,
        skip_approval: frozenset[str] = frozenset(),
    ) -> list[ToolCallRecord]:
        """Run `calls` and return one finished record per call, in call order.

        `skip_approval` holds call ids a person already approved: they run like any call.
        Tool failures never raise (they are records); cancellation of the caller propagates
        (after the unfinished records are marked failed).
        """
        records = [ToolCallRecord(call_id=c.id, name=c.function.name,
                                  arguments=c.function.arguments) for c in calls]
        try:
            if not parallel or len(calls) == 1:
                for call, record in zip(calls, records, strict=True):
                    await self._run_one(call, record, ctx, on_call, call.id in skip_approval)
                return records
            batch: list[int] = []
            for i, call in enumerate(calls):
                found = self._tool(call.function.name)
                if found is not None and found.sequential:
                    await self._batch(batch, calls, records, ctx, on_call, skip_approval)
                    batch = []
                    await self._run_one(call, records[i], ctx, on_call, call.id in skip_approval)
                else:
                    batch.append(i)
            await self._batch(batch, calls, records, ctx, on_call, skip_approval)
            return records
        finally:
            for record in records:
                if not record.finished_at:
                    _unfinished(record)

    async def run_call(
        self,
        call: ToolCall,
        ctx: RunContext[Any],
        *,
        on_call: OnCall | None = None,
        approved: bool = False,
    ) -> ToolCallRecord:
        """Run ONE call (with its timeout) and return its finished record.

        For starting a call as soon as its arguments are complete; not bounded by
        `max_parallel`. `approved=True` runs a tool that needs approval.
        """
        record = ToolCallRecord(call_id=call.id, name=call.function.name,
                                arguments=call.function.arguments)
        try:
            await self._run_one(call, record, ctx, on_call, approved)
        finally:
            if not record.finished_at:
                _unfinished(record)
        return record

    # ------------------------------------------------------------------ internals

    def _tool(self, name: str) -> Tool | None:
        return self.registry._tools.get(name)

    async def _batch(
        self, batch: list[int], calls: Sequence[ToolCall], records: list[ToolCallRecord],
        ctx: RunContext[Any], on_call: OnCall | None, skip_approval: frozenset[str],
    ) -> None:
        if not batch:
            return
        if len(batch) == 1:
            i = batch[0]
            await self._run_one(calls[i], records[i], ctx, on_call, calls[i].id in skip_approval)
            return
        if len(batch) > self.max_parallel:
            gate = asyncio.Semaphore(self.max_parallel)
            await asyncio.gather(*(
                self._run_one(calls[i], records[i], ctx, on_call, calls[i].id in skip_approval,
                              gate)
                for i in batch))
            return
        shared = self._shared_timeout([calls[i] for i in batch])
        if shared is None:
            await asyncio.gather(*(
                self._run_one(calls[i], records[i], ctx, on_call, calls[i].id in skip_approval)
                for i in batch))
            return
        # Every call starts now with the same timeout: one deadline serves them all (a timer
        # per call is the largest cost of a step of trivial calls).
        deadline = asyncio.timeout(shared)
        try:
            async with deadline:
                await asyncio.gather(*(
                    self._run_one(calls[i], records[i], ctx, on_call,
                                  calls[i].id in skip_approval, None, False)
                    for i in batch))
        except TimeoutError:
            if not deadline.expired():
                raise
            for i in batch:
                if not records[i].finished_at:
                    found = self._tool(calls[i].function.name)
                    assert found is not None  # unknown tools finish at once
                    self._timed_out(records[i], found, shared)
                    await self._finish(calls[i], records[i], ctx, on_call)

    def _shared_timeout(self, calls: Sequence[ToolCall]) -> float | None:
        """The timeout of every call, when they all have the same one (else None)."""
        timeouts = set()
        for call in calls:
            found = self._tool(call.function.name)
            timeouts.add(found.timeout if found is not None and found.timeout is not None
                         else self.default_timeout)
        return timeouts.pop() if len(timeouts) == 1 else None

    async def _run_one(
        self, call: ToolCall, record: ToolCallRecord, ctx: RunContext[Any],
        on_call: OnCall | None, approved: bool, gate: asyncio.Semaphore | None = None,
        own_timeout: bool = True,
    ) -> None:
        """Run one call into its record; never raises but for a real cancellation. Kept to
        one coroutine frame: hundreds of conversations may each have calls in flight.
        `own_timeout=False` when the caller enforces the timeout for a whole batch."""
        if gate is not None:
            await gate.acquire()
        name = call.function.name
        record.started_at = time.perf_counter()
        found: Tool | None = None
        deadline: asyncio.Timeout | None = None
        try:
            if on_call is not None:
                await on_call("started", call)
            found = self.registry.get(name)
            kwargs = found.parse_arguments(call.function.arguments)
            if found.requires_approval and not approved:
                record.status = "pending_approval"
                record.result = APPROVAL_PENDING_TEXT
            else:
                timeout = found.timeout if found.timeout is not None else self.default_timeout
                call_ctx = ctx.for_call(name, call.id)
                around = ctx.signals.around
                tool = found
                run = tool.run(kwargs, call_ctx) if around is None else around(
                    call_ctx, tool, kwargs, lambda: tool.run(kwargs, call_ctx))
                if timeout is None or not own_timeout:
                    value = await run
                else:
                    deadline = asyncio.timeout(timeout)
                    async with deadline:
                        value = await run
                record.result = self._cap(clean_text(format_result(value)), found)
        except TimeoutError as error:
            if found is not None and deadline is not None and deadline.expired():
                self._timed_out(record, found, timeout or 0.0)
            else:  # the tool's own TimeoutError (its HTTP client's, say)
                self._fail(record, error)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # a real cancellation (the run, or a deadline around this executor)
            self._fail(record, _StrayCancel())
        except Exception as error:  # every failure goes back to the model
            self._fail(record, error)
        finally:
            if gate is not None:
                gate.release()
        await self._finish(call, record, ctx, on_call)

    def _cap(self, text: str, found: Tool) -> str:
        limit = found.max_result_chars if found.max_result_chars is not None \
            else self.max_result_chars
        if limit is None or len(text) <= limit:
            return text
        return (f"{text[:limit]}\n[… result cut: {len(text):,} characters in all, the first "
                f"{limit:,} are shown. Ask for less (a narrower query, a page) if the rest "
                "matters.]")

    def _timed_out(self, record: ToolCallRecord, found: Tool, timeout: float) -> None:
        name = found.name
        if found.is_async or found.read_only:
            self._fail(record, ToolTimeoutError(name, timeout_message(name, timeout)))
            return
        # a sync function cannot be stopped: its thread goes on and its work may still land
        message = (
            f"Tool '{name}' did not finish within {timeout:g} seconds. It is still running "
            "in the background and may complete, so its outcome is unknown. Do not call it "
            "again for this request; tell the user the result is not confirmed yet.")
        self._fail(record, ToolTimeoutError(name, message))
        record.error_type = UNKNOWN_OUTCOME
        record.outcome_unknown = True

    def _fail(self, record: ToolCallRecord, error: BaseException) -> None:
        """Record a failure as the message the model will read."""
        record.status = "error"
        kind = _name_of(error)
        record.error_type = kind
        if isinstance(error, ToolCallError):
            record.error = record.result = clean_text(_text_of(error.message))
            return
        text = clean_text(_text_of(error))
        record.error = f"{kind}: {text}"
        record.result = (
            f"Tool '{record.name}' failed: {kind}: {text}. "
            "You may call it again with different arguments, or tell the user."
        )

    async def _finish(self, call: ToolCall, record: ToolCallRecord, ctx: RunContext[Any],
                      on_call: OnCall | None) -> None:
        record.finished_at = time.perf_counter()
        log = resolve(self._logger)
        if log is not None:
            log.info(
                "tool_call",
                run_id=ctx.run_id,
                step=ctx.step,
                model=ctx.model,
                tool=record.name,
                call_id=call.id,
                status=record.status,
                error_type=record.error_type,
                latency_ms=round(record.duration * 1000, 1),
            )
        if on_call is not None:
            try:
                await on_call("finished", record)
            except Exception as error:  # an observer must not undo a finished call
                if log is not None:
                    log.warning("tool_call_observer_failed", call_id=call.id,
                                error=f"{_name_of(error)}: {_text_of(error)}")


def _unfinished(record: ToolCallRecord) -> None:
    """A call the step could not finish (interrupted) is a failed call, never an `ok`."""
    record.status = "error"
    record.error_type = "NotFinished"
    record.error = "the call did not finish: its step was interrupted"
    record.result = (f"Tool '{record.name}' did not finish: the step was interrupted, and "
                     "its outcome is unknown. Check before calling it again.")
    record.outcome_unknown = True
    record.finished_at = time.perf_counter()


def _name_of(error: BaseException) -> str:
    try:
        return type(error).__name__
    except Exception:  # pragma: no cover - a class without a name
        return "Exception"


def _text_of(error: Any) -> str:
    """`str(error)`, or a stand-in when the exception cannot be shown."""
    try:
        return str(error)
    except Exception:
        return f"<{_name_of(error)} whose message cannot be shown>"


def timeout_message(name: str, timeout: float) -> str:
    """What the model reads when a call was stopped at its timeout."""
    return (f"Tool '{name}' did not finish within {timeout:g} seconds and was stopped. "
            "Try again later, with simpler arguments, or tell the user.")
