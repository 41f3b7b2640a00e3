"""`ToolExecutor`: runs the tool calls of one model reply.

In parallel mode (kimi-k2-6) the calls of a reply start together in an anyio task group,
bounded by `max_parallel`; a tool marked `sequential` runs alone, in its place. In sequential
mode (kimi-k2-5) the calls run one after another in the order given. Either way the records
come back in the order of the calls. Every failure (unknown tool, bad arguments, an exception,
a timeout) becomes a result the model can read and act on; only the per-tool retry budget
ends a run. Calls to tools that need approval are not run: they come back `pending_approval`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from kimi_agent._logging import EventLogger, resolve
from kimi_agent.errors import ToolCallError, ToolTimeoutError
from kimi_agent.tooling._records import ToolCallRecord
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._tool import Tool, ToolRegistry, format_result
from kimi_agent.wire import ToolCall

OnCall = Callable[[str, Any], Awaitable[None]]
"""Called with ("started", ToolCall) and ("finished", ToolCallRecord) as calls progress."""

AroundTool = Callable[[RunContext[Any], Tool, dict[str, Any], Callable[[], Awaitable[Any]]],
                     Awaitable[Any]]
"""Wraps one tool execution (tracing, durable execution): gets the call's context, the tool,
its validated arguments and `proceed`; returns what `proceed` returns. A run sets it on its
`RunSignals.around`; the executor calls it around each execution when it is set."""

APPROVAL_PENDING_TEXT = "waiting for human approval"


class ToolExecutor:
    """Runs tool calls against a registry; one executor serves every run of an agent."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        max_parallel: int = 16,
        default_timeout: float | None = 60.0,
        logger: EventLogger | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.registry = registry
        self.max_parallel = max_parallel
        self.default_timeout = default_timeout
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
        """Run `calls` and return one record per call, in call order.

        `skip_approval` holds call ids a person already approved: they run like any call.
        """
        records = [ToolCallRecord(call_id=c.id, name=c.function.name,
                                  arguments=c.function.arguments) for c in calls]
        if not parallel or len(calls) == 1:
            for call, record in zip(calls, records, strict=True):
                await self._run_one(call, record, ctx, on_call, skip_approval, None)
            return records
        limiter = anyio.CapacityLimiter(self.max_parallel) if len(calls) > self.max_parallel \
            else None
        batch: list[int] = []
        for i, call in enumerate(calls):
            name = call.function.name
            if name in self.registry and self.registry.get(name).sequential:
                await self._run_batch(batch, calls, records, ctx, on_call, skip_approval, limiter)
                batch = []
                await self._run_one(call, records[i], ctx, on_call, skip_approval, None)
            else:
                batch.append(i)
        await self._run_batch(batch, calls, records, ctx, on_call, skip_approval, limiter)
        return records

    async def _run_batch(
        self, batch: list[int], calls: Sequence[ToolCall], records: list[ToolCallRecord],
        ctx: RunContext[Any], on_call: OnCall | None, skip_approval: frozenset[str],
        limiter: anyio.CapacityLimiter | None,
    ) -> None:
        if not batch:
            return
        if len(batch) == 1:
            i = batch[0]
            await self._run_one(calls[i], records[i], ctx, on_call, skip_approval, limiter)
            return
        shared = self._shared_timeout([calls[i] for i in batch]) if limiter is None else None
        if shared is None:
            async with anyio.create_task_group() as group:
                for i in batch:
                    group.start_soon(self._run_one, calls[i], records[i], ctx, on_call,
                                     skip_approval, limiter)
            return
        # Every call starts now and has the same timeout: one deadline serves them all
        # (a cancel scope per call is the largest cost of a conversation in flight).
        with anyio.move_on_after(shared) as deadline:
            async with anyio.create_task_group() as group:
                for i in batch:
                    group.start_soon(self._run_one, calls[i], records[i], ctx, on_call,
                                     skip_approval, None, False)
        if deadline.cancelled_caught:
            for i in batch:
                if not records[i].finished_at:
                    name = calls[i].function.name
                    self._fail(records[i], ToolTimeoutError(name, timeout_message(name,
                                                                                  shared)))
                    await self._finish(calls[i], records[i], ctx, on_call)

    def _shared_timeout(self, calls: Sequence[ToolCall]) -> float | None:
        """The timeout of every call, when they all have the same one (else None)."""
        timeouts = set()
        for call in calls:
            name = call.function.name
            tool = self.registry.get(name) if name in self.registry else None
            timeouts.add(tool.timeout if tool is not None and tool.timeout is not None
                         else self.default_timeout)
        return timeouts.pop() if len(timeouts) == 1 else None

    async def _run_one(
        self, call: ToolCall, record: ToolCallRecord, ctx: RunContext[Any],
        on_call: OnCall | None, skip_approval: frozenset[str],
        limiter: anyio.CapacityLimiter | None, own_timeout: bool = True,
    ) -> None:
        """Run one call into its record. Kept to one coroutine frame (timeout and limiter
        inline): hundreds of conversations may each have several calls in flight.
        `own_timeout=False` when the caller enforces the timeout for a whole batch."""
        if limiter is not None:
            await limiter.acquire()
        name = call.function.name
        record.started_at = time.perf_counter()
        try:
            if on_call is not None:
                await on_call("started", call)
            tool = self.registry.get(name)
            kwargs = tool.parse_arguments(call.function.arguments)
            if tool.requires_approval and call.id not in skip_approval:
                record.status = "pending_approval"
                record.result = APPROVAL_PENDING_TEXT
            else:
                timeout = tool.timeout if tool.timeout is not None else self.default_timeout
                call_ctx = ctx.for_call(name, call.id)
                around = ctx.signals.around
                run = tool.run(kwargs, call_ctx) if around is None else around(
                    call_ctx, tool, kwargs, lambda: tool.run(kwargs, call_ctx))
                if timeout is None or not own_timeout:
                    value = await run
                else:
                    try:
                        with anyio.fail_after(timeout):
                            value = await run
                    except TimeoutError:
                        raise ToolTimeoutError(name, timeout_message(name, timeout)) from None
                record.result = format_result(value)
        except Exception as error:  # every failure goes back to the model
            self._fail(record, error)
        finally:
            if limiter is not None:
                limiter.release()
        await self._finish(call, record, ctx, on_call)

    @staticmethod
    def _fail(record: ToolCallRecord, error: Exception) -> None:
        """Record a failure as the message the model will read."""
        record.status = "error"
        record.error_type = type(error).__name__
        if isinstance(error, ToolCallError):
            record.error = record.result = error.message
            return
        record.error = f"{type(error).__name__}: {error}"
        record.result = (
            f"Tool '{record.name}' failed: {type(error).__name__}: {error}. "
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
            with anyio.CancelScope(shield=True):  # a batch deadline must not eat the event
                await on_call("finished", record)


def timeout_message(name: str, timeout: float) -> str:
    return (f"Tool '{name}' did not finish within {timeout:g} seconds and was stopped. "
            "Try again later, with simpler arguments, or tell the user.")
