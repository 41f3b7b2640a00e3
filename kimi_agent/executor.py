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

from kimi_agent.errors import ToolCallError, ToolTimeoutError
from kimi_agent.log import EventLogger, resolve
from kimi_agent.result import ToolCallRecord
from kimi_agent.run_context import RunContext
from kimi_agent.tool import Tool, ToolRegistry, format_result
from kimi_agent.wire import ToolCall

OnCall = Callable[[str, Any], Awaitable[None]]
"""Called with ("started", ToolCall) and ("finished", ToolCallRecord) as calls progress."""

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
        async with anyio.create_task_group() as group:
            for i in batch:
                group.start_soon(self._run_one, calls[i], records[i], ctx, on_call,
                                 skip_approval, limiter)

    async def _run_one(
        self, call: ToolCall, record: ToolCallRecord, ctx: RunContext[Any],
        on_call: OnCall | None, skip_approval: frozenset[str],
        limiter: anyio.CapacityLimiter | None,
    ) -> None:
        if limiter is not None:
            async with limiter:
                await self._call(call, record, ctx, on_call, skip_approval)
        else:
            await self._call(call, record, ctx, on_call, skip_approval)

    async def _call(
        self, call: ToolCall, record: ToolCallRecord, ctx: RunContext[Any],
        on_call: OnCall | None, skip_approval: frozenset[str],
    ) -> None:
        name = call.function.name
        record.started_at = time.perf_counter()
        if on_call is not None:
            await on_call("started", call)
        try:
            tool = self.registry.get(name)
            kwargs = tool.parse_arguments(call.function.arguments)
            if tool.requires_approval and call.id not in skip_approval:
                record.status = "pending_approval"
                record.result = APPROVAL_PENDING_TEXT
            else:
                value = await self._invoke(tool, kwargs, ctx.for_call(name, call.id))
                record.result = format_result(value)
        except ToolCallError as error:
            record.status = "error"
            record.error = error.message
            record.error_type = type(error).__name__
            record.result = error.message
        except Exception as error:  # a tool's own failure goes back to the model
            record.status = "error"
            record.error = f"{type(error).__name__}: {error}"
            record.error_type = type(error).__name__
            record.result = (
                f"Tool '{name}' failed: {type(error).__name__}: {error}. "
                "You may call it again with different arguments, or tell the user."
            )
        record.finished_at = time.perf_counter()
        log = resolve(self._logger)
        if log is not None:
            log.info(
                "tool_call",
                run_id=ctx.run_id,
                step=ctx.step,
                model=ctx.model,
                tool=name,
                call_id=call.id,
                status=record.status,
                error_type=record.error_type,
                latency_ms=round(record.duration * 1000, 1),
            )
        if on_call is not None:
            await on_call("finished", record)

    async def _invoke(self, tool: Tool, kwargs: dict[str, Any], ctx: RunContext[Any]) -> Any:
        timeout = tool.timeout if tool.timeout is not None else self.default_timeout
        if timeout is None:
            return await tool.run(kwargs, ctx)
        try:
            with anyio.fail_after(timeout):
                return await tool.run(kwargs, ctx)
        except TimeoutError:
            raise ToolTimeoutError(
                tool.name,
                f"Tool '{tool.name}' did not finish within {timeout:g} seconds and was "
                "stopped. Try again later, with simpler arguments, or tell the user.",
            ) from None

