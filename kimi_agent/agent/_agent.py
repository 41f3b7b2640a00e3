"""`Agent`: a model, its instructions and its tools, run as a loop until the model answers.

An agent holds configuration only; everything about one conversation lives in the session
and in the run, so one agent serves many concurrent runs and embeds cleanly in a service.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic

import anyio
from typing_extensions import TypeVar

from kimi_agent._logging import EventLogger
from kimi_agent._tokens import estimate_tools, estimate_wire_message
from kimi_agent._usage import UsageLimits
from kimi_agent.agent import _events as ev
from kimi_agent.agent._loop import (
    Emit,
    RunLoop,
    in_call_order,
    last_tool_step,
    tool_message,
)
from kimi_agent.agent._loop import (
    pending_approvals as find_pending,
)
from kimi_agent.agent._output import OutputSpec
from kimi_agent.agent._result import PendingApproval, RunResult, StepRecord, ToolCallRecord
from kimi_agent.errors import ApprovalError, ConfigurationError
from kimi_agent.gateway._client import GatewayClient
from kimi_agent.models._profiles import DEFAULT_PROFILES, ModelProfile, ModelProfiles
from kimi_agent.models._router import ModelRouter
from kimi_agent.sessions._protocol import Session
from kimi_agent.sessions._trim import KeepRecentTurns, TrimPolicy
from kimi_agent.tooling._executor import ToolExecutor
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._tool import Tool
from kimi_agent.wire import Message, SystemMessage, ToolMessage, UserMessage

OutputT = TypeVar("OutputT", default=str)

INTERRUPTED_TEXT = (
    "工具调用因进程中断而未完成。The tool call was interrupted before it finished and did "
    "not run to completion; call it again if it is still needed."
)
REJECTED_TEXT = (
    "该操作已被人工审核拒绝：{reason}。The action was rejected by a human reviewer: {reason}. "
    "Do not retry it; explain this to the user."
)

ToolsArg = ToolRegistry | Tool | Iterable[Any] | None


class Agent(Generic[OutputT]):
    """A tool-using agent on Kimi.

    `model` answers every step unless it keeps failing or the conversation outgrows its
    window; then `fallback` does (None disables fallback). `tools` takes `Tool`s, plain
    functions or a `ToolRegistry`. `output_type` (a pydantic model, dataclass, …) asks for
    structured output. Without `client` the agent makes its own `GatewayClient` from the
    environment; close it with `await agent.aclose()` or `async with agent:`.
    """

    def __init__(
        self,
        model: str | ModelProfile = "kimi-k2-6",
        fallback: str | ModelProfile | None = "kimi-k2-5",
        *,
        instructions: str | None = None,
        tools: ToolsArg = (),
        output_type: type[OutputT] | None = None,
        client: GatewayClient | None = None,
        max_steps: int = 20,
        max_parallel_tools: int = 16,
        tool_timeout: float | None = 60.0,
        tool_retries: int = 3,
        output_retries: int = 2,
        usage_limits: UsageLimits | None = None,
        max_tokens: int | None = None,
        trim_policy: TrimPolicy | None = None,
        fallback_cooldown: float = 60.0,
        profiles: ModelProfiles | None = None,
        logger: EventLogger | None = None,
    ) -> None:
        profiles = profiles or DEFAULT_PROFILES
        primary = profiles.get(model)
        backup = profiles.get(fallback) if fallback is not None else None
        if backup is not None and backup.name == primary.name:
            backup = None
        if max_steps < 1:
            raise ConfigurationError("max_steps must be at least 1")
        self.registry = ToolRegistry.of(tools)
        self.instructions = instructions
        self.output: OutputSpec[OutputT] | None = (
            OutputSpec(output_type) if output_type is not None else None
        )
        self.max_steps = max_steps
        self.tool_retries = tool_retries
        self.output_retries = output_retries
        self.usage_limits = usage_limits or UsageLimits()
        self.max_tokens = max_tokens
        self.trim_policy: TrimPolicy = trim_policy or KeepRecentTurns()
        self.logger = logger
        self.router = ModelRouter(primary, backup, cooldown=fallback_cooldown, logger=logger)
        self.executor = ToolExecutor(self.registry, max_parallel=max_parallel_tools,
                                     default_timeout=tool_timeout, logger=logger)
        self._client = client
        self._own_client: GatewayClient | None = None
        self._system: dict[str, tuple[dict[str, Any] | None, int]] = {}
        self._tools_cache: tuple[int, list[dict[str, Any]] | None, int] = (-1, None, 0)

    def __repr__(self) -> str:
        fallback = self.router.fallback.name if self.router.fallback else None
        return (f"Agent(model={self.router.primary.name!r}, fallback={fallback!r}, "
                f"tools={self.registry.names()!r})")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Agent[OutputT]:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client this agent made for itself (a borrowed one is left open)."""
        if self._own_client is not None:
            client, self._own_client = self._own_client, None
            await client.aclose()

    def _client_for_run(self) -> GatewayClient:
        if self._client is not None:
            return self._client
        if self._own_client is None:
            self._own_client = GatewayClient()
        return self._own_client

    # ------------------------------------------------------------------ request parts

    def system_prompt(self, profile: ModelProfile) -> tuple[dict[str, Any] | None, int]:
        """The system message for `profile` (with the output schema where the model needs
        it in the instructions) and its token estimate; computed once per model."""
        cached = self._system.get(profile.name)
        if cached is None:
            parts = [self.instructions] if self.instructions else []
            if self.output is not None and self.output.needs_instructions(profile):
                parts.append(self.output.instructions)
            if parts:
                wire = SystemMessage(content="\n\n".join(parts)).to_wire()
                cached = (wire, estimate_wire_message(wire))
            else:
                cached = (None, 0)
            self._system[profile.name] = cached
        return cached

    @property
    def tool_schemas(self) -> list[dict[str, Any]] | None:
        return self._tools()[0]

    @property
    def tools_tokens(self) -> int:
        return self._tools()[1]

    def _tools(self) -> tuple[list[dict[str, Any]] | None, int]:
        schemas = self.registry.schemas() if len(self.registry) else None
        key = id(schemas)
        if self._tools_cache[0] != key:
            self._tools_cache = (key, schemas, estimate_tools(schemas))
        return self._tools_cache[1], self._tools_cache[2]

    # ------------------------------------------------------------------ running

    async def run(self, prompt: str, *, deps: Any = None, session: Session | None = None
                  ) -> RunResult[OutputT]:
        """Run until the model answers; returns the answer, the messages and the usage."""
        return await self._execute(prompt, deps, session, emit=None, stream=False)

    def run_sync(self, prompt: str, *, deps: Any = None, session: Session | None = None
                 ) -> RunResult[OutputT]:
        """`run` for code that is not async (starts and ends its own event loop)."""
        async def main() -> RunResult[OutputT]:
            if self._client is not None:
                return await self.run(prompt, deps=deps, session=session)
            async with GatewayClient() as client:
                return await self._execute(prompt, deps, session, emit=None, stream=False,
                                           client=client)
        return anyio.run(main)

    @asynccontextmanager
    async def stream(self, prompt: str, *, deps: Any = None, session: Session | None = None
                     ) -> AsyncIterator[AgentStream[OutputT]]:
        """A streamed run: `async for event in run` yields typed events as they happen;
        afterwards `run.result` is the same `RunResult` `run()` would give. Leaving the block
        early cancels the run (running tools included)."""
        async with self._streamed(
            lambda emit: self._execute(prompt, deps, session, emit=emit, stream=True)
        ) as handle:
            yield handle

    async def resume(
        self, session: Session, *, approved: Iterable[str] = (),
        rejected: Mapping[str, str] | None = None, deps: Any = None,
    ) -> RunResult[OutputT]:
        """Continue a run that ended with `pending_approvals`, in this process or another.

        Every pending call must be decided: ids in `approved` run now; ids in `rejected` go
        back to the model as a refusal with the reason, for it to explain to the user.
        """
        return await self._resume(session, approved, rejected, deps, emit=None, stream=False)

    @asynccontextmanager
    async def resume_stream(
        self, session: Session, *, approved: Iterable[str] = (),
        rejected: Mapping[str, str] | None = None, deps: Any = None,
    ) -> AsyncIterator[AgentStream[OutputT]]:
        """`resume`, streamed: the approved tool calls and the model's answer as events."""
        async with self._streamed(
            lambda emit: self._resume(session, approved, rejected, deps, emit=emit, stream=True)
        ) as handle:
            yield handle

    async def pending_approvals(self, session: Session) -> list[PendingApproval]:
        """The calls of `session` waiting for a person's decision ([] when none)."""
        return find_pending(await session.get_items(), self)

    @asynccontextmanager
    async def _streamed(
        self, start: Callable[[Emit], Awaitable[RunResult[OutputT]]]
    ) -> AsyncIterator[AgentStream[OutputT]]:
        send, receive = anyio.create_memory_object_stream[ev.Event](math.inf)
        handle: AgentStream[OutputT] = AgentStream(receive)

        async def drive() -> None:
            async with send:
                try:
                    handle._result = await start(send.send)
                except Exception as error:
                    handle._error = error

        async with anyio.create_task_group() as group:
            group.start_soon(drive)
            try:
                yield handle
            finally:
                group.cancel_scope.cancel()

    async def _resume(
        self, session: Session, approved: Iterable[str], rejected: Mapping[str, str] | None,
        deps: Any, *, emit: Emit | None, stream: bool,
    ) -> RunResult[OutputT]:
        rejected = dict(rejected or {})
        approved_ids = frozenset(approved)
        history = await session.get_items()
        pending = {p.call_id: p for p in find_pending(history, self)}
        if not pending:
            raise ApprovalError(f"session {session.session_id!r} has no calls waiting for "
                                "approval")
        unknown = (approved_ids | set(rejected)) - set(pending)
        both = approved_ids & set(rejected)
        undecided = set(pending) - approved_ids - set(rejected)
        for problem, ids in (("are not pending", unknown), ("are both approved and rejected",
                             both), ("have no decision", undecided)):
            if ids:
                raise ApprovalError(f"calls {sorted(ids)} {problem} in session "
                                    f"{session.session_id!r}; pending: {sorted(pending)}")
        loop: RunLoop[OutputT] = RunLoop(self, client=self._client_for_run(),
                                         run_id=uuid.uuid4().hex, deps=deps, session=session,
                                         history=in_call_order(history), emit=emit,
                                         stream=stream)
        call_message, _ = last_tool_step(history)
        assert call_message is not None
        profile = self._profile_named(call_message.model)
        if emit is not None:
            await emit(ev.RunStarted(loop.run_id, profile.name))
        record = StepRecord(index=1, model=profile.name, finish_reason="tool_calls")
        loop.steps.append(record)
        calls = [c for c in call_message.tool_calls or () if c.id in approved_ids]
        records = await self.executor.execute(
            calls, loop._context(1, profile.name, call_message),
            parallel=profile.parallel_tool_calls,
            skip_approval=approved_ids, on_call=loop._on_call(1) if emit is not None else None)
        for call_id, reason in rejected.items():
            call = pending[call_id]
            refusal = ToolCallRecord(call_id=call_id, name=call.tool,
                                     arguments=call.raw_arguments, status="rejected",
                                     result=REJECTED_TEXT.format(reason=reason))
            records.append(refusal)
            if emit is not None:
                await emit(ev.ToolCallFinished(1, refusal))
        order = {c.id: i for i, c in enumerate(call_message.tool_calls or ())}
        records.sort(key=lambda r: order[r.call_id])
        record.tool_calls.extend(records)
        await loop.commit([tool_message(r) for r in records])
        loop.messages[:] = in_call_order(loop.messages)
        if emit is not None:
            await emit(ev.StepFinished(record))
        if loop.signals.handoff is not None:
            return await loop._finish("handoff", None, "tool_calls")
        return await loop.drive(announce=False)

    def _profile_named(self, name: str | None) -> ModelProfile:
        fallback = self.router.fallback
        if fallback is not None and name == fallback.name:
            return fallback
        return self.router.primary

    async def _execute(
        self, prompt: str, deps: Any, session: Session | None, *, emit: Any, stream: bool,
        client: GatewayClient | None = None,
    ) -> RunResult[OutputT]:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        history: list[Message] = []
        if session is not None:
            history = in_call_order(await session.get_items())
        loop: RunLoop[OutputT] = RunLoop(
            self, client=client or self._client_for_run(), run_id=uuid.uuid4().hex, deps=deps,
            session=session, history=history, emit=emit, stream=stream,
        )
        await self._repair(loop, session)
        await loop.commit([UserMessage(content=prompt)])
        return await loop.drive()

    async def _repair(self, loop: RunLoop[OutputT], session: Session | None) -> None:
        """Make a stored history valid again: calls left without a result by a crash get an
        'interrupted' result; calls waiting for approval must be resumed first."""
        call_message, answered = last_tool_step(loop.messages)
        if call_message is None:
            return
        missing = [c for c in call_message.tool_calls or () if c.id not in answered]
        waiting = [c.id for c in missing if c.function.name in self.registry
                   and self.registry.get(c.function.name).requires_approval]
        if waiting:
            name = session.session_id if session is not None else "?"
            raise ApprovalError(
                f"session {name!r} has calls waiting for approval {waiting}: decide them "
                "with agent.resume(session, approved=[...], rejected={...}) first")
        if missing:
            await loop.commit([ToolMessage(tool_call_id=c.id, content=INTERRUPTED_TEXT)
                               for c in missing])


@dataclass(eq=False)
class AgentStream(Generic[OutputT]):
    """The events of a streamed run; `result` once it is over."""

    _receive: Any
    _result: RunResult[OutputT] | None = None
    _error: Exception | None = field(default=None)

    def __aiter__(self) -> AgentStream[OutputT]:
        return self

    async def __anext__(self) -> ev.Event:
        try:
            return await self._receive.receive()  # type: ignore[no-any-return]
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None

    @property
    def result(self) -> RunResult[OutputT]:
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RuntimeError("the run is not over yet: iterate the events to the end first")
        return self._result

