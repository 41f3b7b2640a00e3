"""`Agent`: a model, its instructions and its tools, run as a loop until the model answers.

An agent holds configuration only; everything about one conversation lives in the session
and in the run, so one agent serves many concurrent runs and embeds cleanly in a service.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Generic

import anyio
from typing_extensions import TypeVar

from kimi_agent._logging import EventLogger
from kimi_agent._usage import UsageLimits
from kimi_agent.agent import _events as ev
from kimi_agent.agent._as_tool import agent_tool
from kimi_agent.agent._channel import EventChannel
from kimi_agent.agent._guardrails import Guardrail, ToolGuardrails
from kimi_agent.agent._handoffs import ACTIVE_AGENT_KEY, AgentHandoff, as_handoffs, handoff_tool
from kimi_agent.agent._hooks import RunHooks, RunInfo, chain_hooks
from kimi_agent.agent._loop import (
    Emit,
    RunLoop,
    approved_calls,
    in_call_order,
    last_tool_step,
    read_history,
    read_window,
)
from kimi_agent.agent._loop import pending_approvals as find_pending
from kimi_agent.agent._output import OutputSpec
from kimi_agent.agent._request import Instructions, RequestParts
from kimi_agent.agent._result import PendingApproval, RunResult
from kimi_agent.agent._run_config import RunConfig
from kimi_agent.agent._serial import one_run_at_a_time
from kimi_agent.errors import (
    ApprovalError,
    ConcurrentRunError,
    ConfigurationError,
    RunTimeoutError,
)
from kimi_agent.gateway._client import GatewayClient
from kimi_agent.models._profiles import DEFAULT_PROFILES, ModelProfile, ModelProfiles
from kimi_agent.models._router import ModelRouter
from kimi_agent.sessions._protocol import Session, SessionState
from kimi_agent.sessions._trim import CacheAwareTrim, TrimPolicy
from kimi_agent.tooling._executor import DEFAULT_MAX_RESULT_CHARS, ToolExecutor
from kimi_agent.tooling._registry import PlainFunction, ToolRegistry
from kimi_agent.tooling._tool import Tool
from kimi_agent.tooling._toolset import Toolset
from kimi_agent.wire import Message

DepsT = TypeVar("DepsT", default=Any)
"""What the agent's runs pass their tools as `RunContext.deps`. Fixed by `deps_type=` (or an
annotation `Agent[Shop, str]`); without either it is `Any`, so untyped code is not checked."""
OutputT = TypeVar("OutputT", default=str)

_ToolItem = Tool[DepsT] | PlainFunction | ToolRegistry[DepsT] | Toolset
_Holder = tuple["Agent[Any, Any]", "AgentHandoff | None", int]
_START_ATTEMPTS = 5
"""Reads of the history a run makes when other writers keep changing it before its first
write (each attempt stores nothing)."""


class Agent(Generic[DepsT, OutputT]):
    """A tool-using agent on Kimi.

    `Agent[Deps, Output]`: `deps_type=Shop` makes it an `Agent[Shop, ...]`, whose runs take
    `deps: Shop` and whose tools must work with `Shop` deps (a `Tool[Other]` is a mypy
    error; a tool typed for a protocol `Shop` satisfies is fine). Without `deps_type` (or an
    annotation) mypy infers them from the tools when it can, else they are `Any` and nothing
    is checked. Typing only: `deps_type` (kept as `agent.deps_type`) is not checked at run
    time.

    `model` answers every step unless it keeps failing or the conversation outgrows its
    window; then `fallback` does (None disables fallback). `tools` takes `Tool`s, plain
    functions or a `ToolRegistry`. `output_type` (a pydantic model, dataclass, …) asks for
    structured output. Without `client` the agent makes its own `GatewayClient` from the
    environment; close it with `await agent.aclose()` or `async with agent:`. `name` and
    `description` identify the agent in traces (and to other agents); `hooks` observe or
    wrap its runs, model calls and tool executions (tracing, durable execution).
    `run_timeout` bounds a whole run (default 10 minutes; None for none); `busy_timeout` is
    how long a run waits for another run on the same conversation to finish.
    `instrument=True` traces this agent's runs with OpenTelemetry (or pass an
    `Instrumentation`, e.g. with `record_content=True`; `kimi_agent.instrument()` does it for
    every agent). `max_tool_result_chars` caps each tool result sent to the model (a tool's own
    `max_result_chars` wins; None: no cap), with a note to the model that it was cut.

    `instructions` may be a function of the run's `RunContext` (sync or async), evaluated
    once per run so the system prompt stays byte-stable across its steps. `handoffs` are
    agents this one may pass the conversation to (`transfer_to_{name}` tools; see
    `add_handoff`); `input_guardrails`, `output_guardrails` and `tool_guardrails` check what
    comes in, what goes out and what tools get and give (see `GuardrailResult`).

    Raises:
        ConfigurationError: an unknown model, `max_steps` below 1, or a bad tool option.
        ToolDefinitionError: a function that cannot become a tool.
    """

    def __init__(
        self,
        model: str | ModelProfile = "kimi-k2-6",
        fallback: str | ModelProfile | None = "kimi-k2-5",
        *,
        instructions: Instructions = None,
        tools: _ToolItem[DepsT] | Iterable[_ToolItem[DepsT]] | None = (),
        output_type: type[OutputT] | None = None,
        deps_type: type[DepsT] | None = None,
        client: GatewayClient | None = None,
        name: str = "agent",
        description: str = "",
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
        hooks: Sequence[RunHooks] = (),
        run_timeout: float | None = 600.0,
        busy_timeout: float | None = 30.0,
        handoffs: Sequence[Agent[Any, Any] | AgentHandoff] = (),
        input_guardrails: Sequence[Guardrail] = (),
        output_guardrails: Sequence[Guardrail] = (),
        tool_guardrails: Sequence[Guardrail] = (),
        max_tool_result_chars: int | None = DEFAULT_MAX_RESULT_CHARS,
        instrument: bool | RunHooks = False,
    ) -> None:
        profiles = profiles or DEFAULT_PROFILES
        primary = profiles.get(model)
        backup = profiles.get(fallback) if fallback is not None else None
        if backup is not None and backup.name == primary.name:
            backup = None
        if max_steps < 1:
            raise ConfigurationError("max_steps must be at least 1")
        self.name = name
        self.description = description
        self.instructions = instructions
        self.deps_type = deps_type
        self.registry: ToolRegistry[DepsT] = ToolRegistry.of(tools)
        self.router = ModelRouter(primary, backup, cooldown=fallback_cooldown, logger=logger)
        output: OutputSpec[OutputT] | None = (
            OutputSpec(output_type) if output_type is not None else None
        )
        if instrument:
            hooks = [_instrumentation(instrument), *hooks]
        if tool_guardrails:
            hooks = [*hooks, ToolGuardrails(tuple(tool_guardrails))]
        chained = chain_hooks(hooks)
        self._config = RunConfig(
            name=name,
            router=self.router,
            registry=self.registry,
            executor=ToolExecutor(self.registry, max_parallel=max_parallel_tools,
                                  default_timeout=tool_timeout, logger=logger,
                                  max_result_chars=max_tool_result_chars),
            request=RequestParts(instructions, output, self.registry),
            output=output,
            max_steps=max_steps,
            tool_retries=tool_retries,
            output_retries=output_retries,
            usage_limits=usage_limits or UsageLimits(),
            max_tokens=max_tokens,
            trim_policy=trim_policy or CacheAwareTrim(),
            logger=logger,
            hooks=chained,
            input_guardrails=tuple(input_guardrails),
            output_guardrails=tuple(output_guardrails),
        )
        for target in as_handoffs(handoffs):
            self.add_handoff(target)
        self.run_timeout = run_timeout
        self.busy_timeout = busy_timeout
        self._client = client
        self._own_client: GatewayClient | None = None

    def add_hooks(self, *hooks: RunHooks) -> None:
        """Wrap this agent's runs in `hooks` as well, outside the ones it was built with
        (call it before the agent's first run): an integration such as durable execution
        adopts an agent built elsewhere."""
        current = self._config.hooks
        chained = chain_hooks([*hooks, *([current] if current is not None else [])])
        self._config = replace(self._config, hooks=chained)

    def add_handoff(self, target: Agent[Any, Any] | AgentHandoff) -> None:
        """Let this agent hand the conversation to `target` (a `transfer_to_{name}` tool).
        Call it while setting agents up (before their first run), e.g. for a target that
        hands back to this agent.

        Raises:
            ConfigurationError: a target with this agent's name, or one already added.
        """
        [handoff] = as_handoffs([target])
        name = handoff.agent.name
        if name == self.name or name in self._config.handoffs:
            raise ConfigurationError(f"agent {self.name!r} cannot hand off to {name!r} twice "
                                     "or to itself")
        self._config.handoffs[name] = handoff
        self.registry.register(handoff_tool(handoff))

    def as_tool(self, name: str | None = None, description: str | None = None
                ) -> Tool[DepsT]:
        """This agent as one tool of another: the calling model gives it a request, it runs
        (its own model calls, usage added to the caller's, events nested in the caller's
        stream) and its answer is the tool's result."""
        return agent_tool(self, name, description)

    def _reachable(self) -> dict[str, Agent[Any, Any]]:
        """The agents a conversation may be held by, from this one, by name."""
        found: dict[str, Agent[Any, Any]] = {self.name: self}
        todo: list[Agent[Any, Any]] = [self]
        while todo:
            for handoff in todo.pop()._config.handoffs.values():
                if handoff.agent.name not in found:
                    found[handoff.agent.name] = handoff.agent
                    todo.append(handoff.agent)
        return found

    async def _holder(self, session: Session | None) -> _Holder:
        """The agent that holds `session`'s conversation (this one unless a hand-off gave it
        to another), the hand-off that led there, and the session position it happened at."""
        if session is None or not self._config.handoffs or \
                not isinstance(session, SessionState):
            return self, None, 0
        state = await session.get_state(ACTIVE_AGENT_KEY)
        if not isinstance(state, dict) or state.get("agent") in (None, self.name):
            return self, None, 0
        agents = self._reachable()
        holder = agents.get(state["agent"])
        if holder is None:
            return self, None, 0
        via = agents.get(state.get("via") or "")
        edge = via._config.handoffs.get(holder.name) if via is not None else None
        at = state.get("at")
        return holder, edge, at if isinstance(at, int) else 0

    def __repr__(self) -> str:
        fallback = self.router.fallback.name if self.router.fallback else None
        return (f"Agent(model={self.router.primary.name!r}, fallback={fallback!r}, "
                f"tools={self.registry.names()!r})")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Agent[DepsT, OutputT]:
        await self.registry.open_toolsets()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client this agent made for itself (a borrowed one is left open) and
        the agent's toolsets (e.g. MCP servers)."""
        await self.registry.close_toolsets()
        if self._own_client is not None:
            client, self._own_client = self._own_client, None
            await client.aclose()

    def _client_for_run(self) -> GatewayClient:
        if self._client is not None:
            return self._client
        if self._own_client is None:
            self._own_client = GatewayClient()
        return self._own_client

    # ------------------------------------------------------------------ running

    async def run(self, prompt: str, *, deps: DepsT = None,  # type: ignore[assignment]
                  session: Session | None = None) -> RunResult[OutputT]:
        """Run until the model answers; returns the answer, the messages and the usage.

        Raises:
            ModelFailedError: the model call of a step failed on every model it may use
                (`cause` is the gateway error).
            ApprovalError: the session has calls waiting for a decision (resume first).
            MaxStepsExceededError: the model was still calling tools after `max_steps`.
            UsageLimitExceededError: the run reached one of its `usage_limits`.
            ToolRetriesExceededError: a tool kept failing past `tool_retries`.
            OutputLengthError: the reply stopped at `max_tokens` before any answer.
            OutputValidationError: the structured output stayed invalid after corrections.
            GuardrailTripped: a guardrail stopped the run (its `reply` is the answer).
            RunTimeoutError: the run did not finish within `run_timeout`.
            ConversationBusyError: another run held the conversation past `busy_timeout`.
            ConcurrentRunError: another run changed the session while this one ran.
            UnusableReplyError: the model's reply could not be used, even when asked again.
        """
        return await self._execute(prompt, deps, session, emit=None, stream=False)

    def run_sync(self, prompt: str, *, deps: DepsT = None,  # type: ignore[assignment]
                 session: Session | None = None) -> RunResult[OutputT]:
        """`run` for code that is not async (starts and ends its own event loop).

        Raises:
            KimiAgentError: the same errors as `run` (all are subclasses).
        """
        async def main() -> RunResult[OutputT]:
            if self._client is not None:
                return await self.run(prompt, deps=deps, session=session)
            async with GatewayClient() as client:
                return await self._execute(prompt, deps, session, emit=None, stream=False,
                                           client=client)
        return anyio.run(main)

    @asynccontextmanager
    async def stream(self, prompt: str, *, deps: DepsT = None,  # type: ignore[assignment]
                     session: Session | None = None) -> AsyncIterator[AgentStream[OutputT]]:
        """A streamed run: `async for event in run` yields typed events as they happen;
        afterwards `run.result` is the same `RunResult` `run()` would give. Leaving the block
        early cancels the run (running tools included).

        Raises:
            KimiAgentError: the same errors as `run`, from the iteration or from `result`.
        """
        async with self._streamed(
            lambda emit: self._execute(prompt, deps, session, emit=emit, stream=True)
        ) as handle:
            yield handle

    async def resume(
        self, session: Session, *, approved: Iterable[str] = (),
        rejected: Mapping[str, str] | None = None,
        deps: DepsT = None,  # type: ignore[assignment]
    ) -> RunResult[OutputT]:
        """Continue a run that ended with `pending_approvals`, in this process or another.

        Every pending call must be decided: ids in `approved` run now; ids in `rejected` go
        back to the model as a refusal with the reason, for it to explain to the user.

        Raises:
            ApprovalError: nothing is pending, or an id is unknown, decided twice or left
                undecided.
            KimiAgentError: the errors of `run` for the steps that follow.
        """
        return await self._resume(session, approved, rejected, deps, emit=None, stream=False)

    @asynccontextmanager
    async def resume_stream(
        self, session: Session, *, approved: Iterable[str] = (),
        rejected: Mapping[str, str] | None = None,
        deps: DepsT = None,  # type: ignore[assignment]
    ) -> AsyncIterator[AgentStream[OutputT]]:
        """`resume`, streamed: the approved tool calls and the model's answer as events.

        Raises:
            KimiAgentError: the same errors as `resume`.
        """
        async with self._streamed(
            lambda emit: self._resume(session, approved, rejected, deps, emit=emit, stream=True)
        ) as handle:
            yield handle

    async def pending_approvals(self, session: Session) -> list[PendingApproval]:
        """The calls of `session` waiting for a person's decision ([] when none)."""
        holder = (await self._holder(session))[0]
        await holder.registry.refresh()
        return find_pending((await read_history(session))[1], holder.registry,
                            await approved_calls(session))

    @asynccontextmanager
    async def _streamed(
        self, start: Callable[[Emit], Awaitable[RunResult[OutputT]]]
    ) -> AsyncIterator[AgentStream[OutputT]]:
        channel: EventChannel[ev.Event] = EventChannel()
        handle: AgentStream[OutputT] = AgentStream(channel)

        async def emit(event: ev.Event) -> None:
            channel.send(event)

        async def drive() -> None:
            try:
                handle._result = await start(emit)
            except Exception as error:
                handle._error = error
            finally:
                channel.close()

        # An error raised in the caller's block (e.g. the run's own error, re-raised by the
        # iteration) must leave as itself, not wrapped in the task group's ExceptionGroup:
        # it is held while the group winds down and raised after.
        raised: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(drive)
                try:
                    yield handle
                except BaseException as error:  # re-raised below, unwrapped
                    raised = error
                finally:
                    group.cancel_scope.cancel()
        finally:
            channel.discard()
        if raised is not None:
            raise raised

    def _loop(self, client: GatewayClient, deps: Any, session: Session | None,
              history: list[Message], emit: Emit | None, stream: bool, base: int = 0,
              holder: _Holder | None = None,
              known_tokens: Sequence[tuple[Message, int]] = (), run_id: str | None = None,
              ) -> RunLoop[OutputT]:
        agent, edge, at = holder or (self, None, 0)
        return RunLoop(agent._config, client=client, run_id=run_id or uuid.uuid4().hex,
                       deps=deps,
                       session=session, history=history, emit=emit, stream=stream, base=base,
                       input_filter=edge.input_filter if edge is not None else None,
                       filter_until=at, known_tokens=known_tokens)

    async def _hooked(self, loop: RunLoop[OutputT], kind: str,
                      body: Callable[[], Awaitable[RunResult[OutputT]]]) -> RunResult[OutputT]:
        """Run `body` within the run deadline and through the run hooks."""
        timeout = self.run_timeout

        async def bounded() -> RunResult[OutputT]:
            if timeout is None:
                return await body()
            with anyio.move_on_after(timeout) as deadline:
                return await body()
            assert deadline.cancelled_caught
            raise RunTimeoutError(
                f"the run did not finish within run_timeout={timeout:g} s (completed steps "
                "are kept in the session)", messages=loop.messages)

        hooks = loop.hooks
        if hooks is None:
            return await bounded()
        info = RunInfo(loop.run_id, self.name,
                       loop.session.session_id if loop.session is not None else None,
                       kind, loop.stream)
        return await hooks.on_run(info, bounded)

    async def _resume(
        self, session: Session, approved: Iterable[str], rejected: Mapping[str, str] | None,
        deps: Any, *, emit: Emit | None, stream: bool, client: GatewayClient | None = None,
    ) -> RunResult[OutputT]:
        async with one_run_at_a_time(session, self.busy_timeout):
            return await self._resume_held(session, approved, rejected, deps, emit=emit,
                                           stream=stream, client=client)

    async def _resume_held(
        self, session: Session, approved: Iterable[str], rejected: Mapping[str, str] | None,
        deps: Any, *, emit: Emit | None, stream: bool, client: GatewayClient | None = None,
    ) -> RunResult[OutputT]:
        rejected = dict(rejected or {})
        approved_ids = frozenset(approved)
        holder = await self._holder(session)
        await holder[0].registry.refresh()
        base, history = await read_history(session)
        pending = {p.call_id: p for p in find_pending(history, holder[0].registry,
                                                       await approved_calls(session))}
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
        loop = self._loop(client or self._client_for_run(), deps, session,
                          in_call_order(history), emit, stream, base, holder)
        call_message, _ = last_tool_step(history)
        assert call_message is not None
        return await self._hooked(
            loop, "resume", lambda: loop.resume(call_message, approved_ids, rejected, pending))

    async def _execute(
        self, prompt: str, deps: Any, session: Session | None, *, emit: Emit | None,
        stream: bool, client: GatewayClient | None = None,
    ) -> RunResult[OutputT]:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        async with one_run_at_a_time(session, self.busy_timeout):
            return await self._execute_held(prompt, deps, session, emit=emit, stream=stream,
                                            client=client)

    async def _execute_held(
        self, prompt: str, deps: Any, session: Session | None, *, emit: Emit | None,
        stream: bool, client: GatewayClient | None,
    ) -> RunResult[OutputT]:
        history: list[Message] = []
        known: list[tuple[Message, int]] = []
        base = 0
        holder = await self._holder(session)
        await holder[0].registry.refresh()
        if session is not None:
            base, stored, counts = await read_window(session)
            history = in_call_order(stored)
            if counts is not None:
                known = list(zip(stored, counts, strict=True))
        loop = self._loop(client or self._client_for_run(), deps, session, history, emit,
                          stream, base, holder, known)

        async def body() -> RunResult[OutputT]:
            nonlocal loop
            for attempt in range(_START_ATTEMPTS):
                try:
                    await loop.repair()
                    await loop.start(prompt)
                    break
                except ConcurrentRunError:
                    # Another writer (another process) appended between this run's read and
                    # its first write. Nothing of this run is stored or sent yet, so read the
                    # history again and start over rather than drop the user's message.
                    if session is None or loop.new_messages or attempt + 1 == _START_ATTEMPTS:
                        raise
                    base, stored = await read_history(session)
                    loop = self._loop(client or self._client_for_run(), deps, session,
                                      in_call_order(stored), emit, stream, base, holder,
                                      run_id=loop.run_id)
            return await loop.drive()

        return await self._hooked(loop, "run", body)


def _instrumentation(instrument: bool | RunHooks) -> RunHooks:
    """`Agent(instrument=True)`: OpenTelemetry spans and metrics with the application's
    providers (the `otel` extra, imported only then); or the `Instrumentation` given."""
    if isinstance(instrument, RunHooks):
        return instrument
    from kimi_agent.tracing import Instrumentation

    return Instrumentation()


@dataclass(eq=False)
class AgentStream(Generic[OutputT]):
    """The events of a streamed run; `result` once it is over."""

    _channel: EventChannel[ev.Event]
    _result: RunResult[OutputT] | None = None
    _error: Exception | None = field(default=None)

    def __aiter__(self) -> AgentStream[OutputT]:
        return self

    async def __anext__(self) -> ev.Event:
        try:
            return await self._channel.receive()
        except anyio.EndOfStream:
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

