"""One run of an agent: ask the model, run its tools, feed the results back, until it answers.

A `RunLoop` holds the state of one run (messages, steps, usage) and keeps Kimi's rules:
assistant messages go back with their `reasoning_content`, tool-call ids are echoed byte for
byte, results follow the order of the calls. Each completed step is appended to the session
at once, shielded from cancellation, so a crash or a cancel loses at most the step in flight
and never leaves a history the gateway would refuse.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from kimi_agent._logging import resolve
from kimi_agent._tokens import estimate_wire_message
from kimi_agent._usage import RunUsage
from kimi_agent.agent import _events as ev
from kimi_agent.agent._result import (
    PendingApproval,
    RunResult,
    RunStatus,
    StepRecord,
    ToolCallRecord,
)
from kimi_agent.errors import (
    GatewayError,
    MaxStepsExceededError,
    ModelFailedError,
    OutputLengthError,
    OutputValidationError,
    ToolRetriesExceededError,
    UsageLimitExceededError,
)
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.sessions._protocol import Session
from kimi_agent.tooling._run_context import RunContext, RunSignals, reply_id_of
from kimi_agent.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
    dumps,
)

if TYPE_CHECKING:
    from kimi_agent.agent._agent import Agent
    from kimi_agent.gateway._client import GatewayClient

OutputT = TypeVar("OutputT")
Emit = Callable[[ev.Event], Awaitable[None]]


class RunLoop(Generic[OutputT]):
    """The state and steps of one run."""

    def __init__(
        self,
        agent: Agent[OutputT],
        *,
        client: GatewayClient,
        run_id: str,
        deps: Any,
        session: Session | None,
        history: list[Message],
        emit: Emit | None,
        stream: bool,
    ) -> None:
        self.agent = agent
        self.client = client
        self.run_id = run_id
        self.deps = deps
        self.session = session
        self.messages: list[Message] = history
        self.new_messages: list[Message] = []
        self.steps: list[StepRecord] = []
        self.usage = RunUsage()
        self.signals = RunSignals()
        self.emit = emit
        self.stream = stream
        self._wire: dict[int, tuple[Message, dict[str, Any], int]] = {}
        self._failures: dict[str, int] = {}
        self._output_retries = 0
        self._scratch: list[Message] = []
        """Messages sent to the model but not kept (e.g. invalid structured output)."""

    # ------------------------------------------------------------------ messages

    def _wire_form(self, message: Message) -> tuple[dict[str, Any], int]:
        """The wire dict of a message and its token estimate, computed once per message."""
        cached = self._wire.get(id(message))
        if cached is None or cached[0] is not message:
            wire = message.to_wire()
            cached = self._wire[id(message)] = (message, wire, estimate_wire_message(wire))
        return cached[1], cached[2]

    async def commit(self, items: Sequence[Message]) -> None:
        """Append a completed step to the run and to the session, as one unit."""
        self.messages.extend(items)
        self.new_messages.extend(items)
        if self.session is not None:
            with anyio.CancelScope(shield=True):
                await self.session.add_items(items)

    def _context(self, step: int, model: str,
                 reply: AssistantMessage | None = None) -> RunContext[Any]:
        return RunContext(deps=self.deps, run_id=self.run_id, step=step, model=model,
                          usage=self.usage, signals=self.signals,
                          session_id=None if self.session is None else self.session.session_id,
                          reply_id=None if reply is None else reply_id_of(reply))

    # ------------------------------------------------------------------ requests

    def _build(self, profile: ModelProfile) -> bytes:
        agent = self.agent
        history = self.messages + self._scratch if self._scratch else self.messages
        forms = [self._wire_form(m) for m in history]
        system, system_tokens = agent.system_prompt(profile)
        fixed = system_tokens + agent.tools_tokens
        reserve = min(profile.max_output, agent.max_tokens or profile.max_output)
        budget = profile.context_window - fixed - reserve
        budget -= profile.margin(budget)
        if sum(count for _, count in forms) > budget:
            history = agent.trim_policy.trim(history, [c for _, c in forms], budget)
            forms = [self._wire_form(m) for m in history]
        prompt_tokens = fixed + sum(count for _, count in forms)
        body: dict[str, Any] = {
            "model": profile.name,
            "messages": [system, *(wire for wire, _ in forms)] if system else
            [wire for wire, _ in forms],
            "max_tokens": profile.clamp_max_tokens(prompt_tokens, agent.max_tokens),
        }
        if agent.tool_schemas:
            body["tools"] = agent.tool_schemas
        if agent.output is not None:
            body["response_format"] = agent.output.response_format(profile)
        if self.stream:
            body["stream"] = True
        return dumps(body).encode()

    def _prompt_estimate(self) -> int:
        total = self.agent.system_prompt(self.agent.router.primary)[1] + self.agent.tools_tokens
        for message in self.messages:
            total += self._wire_form(message)[1]
        return total

    async def _model_call(self, step: int) -> tuple[ChatCompletion, ModelProfile, str | None]:
        agent = self.agent
        on_fallback = self._on_fallback(step) if self.emit is not None else None
        try:
            if not self.stream:
                return await agent.router.complete(self.client, self._build,
                                                   self._prompt_estimate(), on_fallback)
            return await agent.router.stream(self.client, self._build, self._prompt_estimate(),
                                             self._on_chunk(step), on_fallback)
        except GatewayError as error:
            raise ModelFailedError(
                f"the model call of step {step} failed: {error}",
                messages=self.messages, cause=error, partial=error.partial,
            ) from error

    def _on_fallback(self, step: int) -> Callable[[str, str, str], Awaitable[None]]:
        async def on_fallback(source: str, target: str, reason: str) -> None:
            if self.emit is not None:
                await self.emit(ev.FallbackActivated(step, source, target, reason))
        return on_fallback

    def _on_chunk(self, step: int) -> Callable[[ChatCompletionChunk], Awaitable[None]]:
        async def on_chunk(chunk: ChatCompletionChunk) -> None:
            if self.emit is None:
                return
            for choice in chunk.choices:
                delta = choice.delta
                if delta.reasoning_content:
                    await self.emit(ev.ReasoningDelta(step, delta.reasoning_content))
                if delta.content:
                    await self.emit(ev.TextDelta(step, delta.content))
        return on_chunk

    # ------------------------------------------------------------------ the loop

    async def drive(self, *, announce: bool = True) -> RunResult[OutputT]:
        """Ask, run tools, repeat until an answer; `announce` emits `RunStarted` first."""
        agent = self.agent
        if announce and self.emit is not None:
            await self.emit(ev.RunStarted(self.run_id, agent.router.primary.name))
        while True:
            step = len(self.steps) + 1
            if step > agent.max_steps:
                raise MaxStepsExceededError(
                    f"the model was still calling tools after {agent.max_steps} steps",
                    messages=self.messages)
            if agent.usage_limits.would_exceed_requests(self.usage):
                raise UsageLimitExceededError(
                    f"the run reached its limit of {agent.usage_limits.request_limit} requests",
                    messages=self.messages)
            started = time.perf_counter()
            completion, profile, reason = await self._model_call(step)
            self.usage.add(completion.usage)
            message = completion.message
            message.model = profile.name
            record = StepRecord(
                index=step, model=profile.name, finish_reason=completion.finish_reason,
                text=message.text, reasoning=message.reasoning_content or "",
                usage=completion.usage, latency=time.perf_counter() - started,
                fallback_reason=reason or None,
            )
            self.steps.append(record)
            self._log_step(record)
            exceeded = agent.usage_limits.exceeded(self.usage)
            if message.tool_calls:
                status = await self._tool_step(message, message.tool_calls, profile, record)
                if exceeded:
                    raise UsageLimitExceededError(exceeded, messages=self.messages)
                if status is not None:
                    return await self._finish(status, None, completion.finish_reason)
                continue
            if exceeded:
                raise UsageLimitExceededError(exceeded, messages=self.messages)
            output = await self._answer(message, completion.finish_reason, record)
            if output is not _RETRY:
                return await self._finish("completed", output, completion.finish_reason)

    async def _tool_step(
        self, message: AssistantMessage | None, calls: list[ToolCall], profile: ModelProfile,
        record: StepRecord, approved: frozenset[str] = frozenset(),
    ) -> RunStatus | None:
        """Run the calls of a reply and commit the step (with `message` unless it is None,
        i.e. already committed); returns the status that ends the run, if any."""
        ctx = self._context(record.index, profile.name, message)
        records = await self.agent.executor.execute(
            calls, ctx, parallel=profile.parallel_tool_calls,
            on_call=self._on_call(record.index) if self.emit is not None else None,
            skip_approval=approved,
        )
        record.tool_calls.extend(records)
        step_messages: list[Message] = [] if message is None else [message]
        step_messages.extend(tool_message(r) for r in records if r.status != "pending_approval")
        self._scratch.clear()
        await self.commit(step_messages)
        if self.emit is not None:
            await self.emit(ev.StepFinished(record))
        self._count_failures(records)
        if any(r.status == "pending_approval" for r in records):
            return "pending_approval"
        if self.signals.handoff is not None:
            return "handoff"
        return None

    def _on_call(self, step: int) -> Callable[[str, Any], Awaitable[None]]:
        async def on_call(phase: str, item: Any) -> None:
            if self.emit is None:
                return
            if phase == "started":
                await self.emit(ev.ToolCallStarted(step, item.id, item.function.name,
                                                   item.function.arguments))
            else:
                await self.emit(ev.ToolCallFinished(step, item))
        return on_call

    def _count_failures(self, records: list[ToolCallRecord]) -> None:
        for r in records:
            if r.status == "error":
                self._failures[r.name] = self._failures.get(r.name, 0) + 1
                if self._failures[r.name] > self.agent.tool_retries:
                    raise ToolRetriesExceededError(
                        f"the model's calls to tool {r.name!r} failed "
                        f"{self._failures[r.name]} times in a row; last error: {r.error}",
                        messages=self.messages)
            elif r.status == "ok":
                self._failures.pop(r.name, None)

    async def _answer(self, message: AssistantMessage, finish_reason: str | None,
                      record: StepRecord) -> Any:
        """The output of a final reply, or `_RETRY` when it went back for correction."""
        if finish_reason == "length" and not message.content:
            raise OutputLengthError(
                "the reply stopped at max_tokens before any answer (the reasoning used the "
                "whole budget); raise max_tokens or simplify the request",
                messages=self.messages)
        spec = self.agent.output
        if spec is None:
            await self._commit_answer(message, record)
            return message.text
        try:
            output = spec.validate(message.text)
        except ValueError as error:
            if self._output_retries >= self.agent.output_retries:
                raise OutputValidationError(
                    f"the structured output stayed invalid after {self._output_retries} "
                    f"corrections: {error}", messages=self.messages, errors=error) from None
            self._output_retries += 1
            self._scratch.extend([message, UserMessage(content=spec.correction(error))])
            if self.emit is not None:
                await self.emit(ev.StepFinished(record))
            return _RETRY
        await self._commit_answer(message, record)
        return output

    async def _commit_answer(self, message: AssistantMessage, record: StepRecord) -> None:
        self._scratch.clear()
        await self.commit([message])
        if self.emit is not None:
            await self.emit(ev.StepFinished(record))

    async def _finish(self, status: RunStatus, output: Any, finish_reason: str | None
                      ) -> RunResult[OutputT]:
        """The result; a run that stopped for approval or hand-off has no answer: "" for a
        text agent, None for structured output."""
        if output is None and self.agent.output is None:
            output = ""
        result: RunResult[OutputT] = RunResult(
            output=output,
            run_id=self.run_id, messages=self.messages, new_messages=self.new_messages,
            usage=self.usage, steps=self.steps, status=status,
            pending_approvals=pending_approvals(self.messages, self.agent) if
            status == "pending_approval" else [],
            handoff=self.signals.handoff, finish_reason=finish_reason,
        )
        if self.emit is not None:
            await self.emit(ev.RunFinished(result))
        return result

    def _log_step(self, record: StepRecord) -> None:
        log = resolve(self.agent.logger)
        if log is None:
            return
        usage = record.usage
        log.info(
            "model_step", run_id=self.run_id, step=record.index, model=record.model,
            latency_ms=round(record.latency * 1000, 1), finish_reason=record.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            cached_tokens=usage.cached_tokens if usage else None,
            fallback_reason=record.fallback_reason,
        )


class _Retry:
    pass


_RETRY: Any = _Retry()


def tool_message(record: ToolCallRecord) -> ToolMessage:
    return ToolMessage(tool_call_id=record.call_id, content=record.result)


def pending_approvals(messages: Sequence[Message], agent: Agent[Any]) -> list[PendingApproval]:
    """Calls of the last tool step that have no result yet and wait for a person."""
    call_message, answered = last_tool_step(messages)
    if call_message is None:
        return []
    pending = []
    for call in call_message.tool_calls or ():
        if call.id in answered:
            continue
        try:
            arguments = agent.registry.get(call.function.name).parse_arguments(
                call.function.arguments)
        except Exception:
            arguments = {}
        pending.append(PendingApproval(call.id, call.function.name, arguments,
                                       call.function.arguments))
    return pending


def in_call_order(messages: list[Message]) -> list[Message]:
    """The history with each step's tool results in the order of its calls.

    A step resumed after an approval stores the approved results after the ones that ran at
    once; Kimi expects results in call order, so they are put back in order before sending.
    Returns `messages` itself when nothing needs to move (the common case).
    """
    out: list[Message] | None = None
    i, n = 0, len(messages)
    while i < n:
        message = messages[i]
        i += 1
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        start = i
        while i < n and isinstance(messages[i], ToolMessage):
            i += 1
        results = [m for m in messages[start:i] if isinstance(m, ToolMessage)]
        order = {call.id: k for k, call in enumerate(message.tool_calls)}
        ranks = [order.get(m.tool_call_id, len(order)) for m in results]
        if ranks != sorted(ranks):
            if out is None:
                out = list(messages)
            out[start:i] = [m for _, m in sorted(zip(ranks, results, strict=True),
                                                 key=lambda pair: pair[0])]
    return messages if out is None else out


def last_tool_step(messages: Sequence[Message]) -> tuple[AssistantMessage | None, set[str]]:
    """The last assistant tool-call message (if it ends the history) and the ids answered."""
    answered: set[str] = set()
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
            continue
        if isinstance(message, AssistantMessage) and message.tool_calls:
            return message, answered
        return None, set()
    return None, set()
