"""One run of an agent: ask the model, run its tools, feed the results back, until it answers.

A `RunLoop` holds the state of one run (messages, steps, usage) and keeps Kimi's rules:
assistant messages go back with their `reasoning_content`, tool-call ids are echoed byte for
byte, results follow the order of the calls. Each completed step is appended to the session
at once, shielded from cancellation, so a crash or a cancel loses at most the step in flight
and never leaves a history the gateway would refuse.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.abc
from pydantic_core import to_jsonable_python

from kimi_agent._logging import resolve
from kimi_agent._tokens import estimate_wire_message
from kimi_agent._usage import RunUsage
from kimi_agent.agent import _events as ev
from kimi_agent.agent._early import EarlyStarter, Started
from kimi_agent.agent._guardrails import StreamGuard, holdbacks_of, run_guardrails
from kimi_agent.agent._handoffs import ACTIVE_AGENT_KEY, InputFilter
from kimi_agent.agent._hooks import ModelCall, around_tool, run_hooks
from kimi_agent.agent._result import (
    PendingApproval,
    RunResult,
    RunStatus,
    StepRecord,
    ToolCallRecord,
)
from kimi_agent.errors import (
    ApprovalError,
    ConcurrentRunError,
    EmptyAnswerError,
    GatewayError,
    GuardrailTripped,
    InvalidToolCallIdsError,
    MaxStepsExceededError,
    ModelFailedError,
    OutputLengthError,
    OutputValidationError,
    ToolRetriesExceededError,
    UnusableReplyError,
    UsageLimitExceededError,
)
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.sessions._protocol import (
    MemorySession,
    Session,
    SessionState,
    TokenCountedSession,
    WindowedSession,
)
from kimi_agent.sessions._trim import CacheAwareTrim, KeepRecentTurns
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
    from kimi_agent.agent._run_config import RunConfig
    from kimi_agent.gateway._client import GatewayClient
    from kimi_agent.tooling._registry import ToolRegistry

OutputT = TypeVar("OutputT")
Emit = Callable[[ev.Event], Awaitable[None]]


INTERRUPTED_TEXT = (
    "工具调用因进程中断而未完成。The tool call was interrupted before it finished and did "
    "not run to completion; call it again if it is still needed."
)
UNKNOWN_OUTCOME_TEXT = (
    "该操作已获批准并开始执行，但执行结果未能记录，结果未知，请勿重复执行。The approved call "
    "started but its result was never recorded: its outcome is unknown. Do not call it again; "
    "tell the user it is being checked."
)
WINDOW_KEY = "kimi_agent.window_start"
"""Session state: where the history sent to the model starts (a trim's cut, kept so that the
next run reads from there instead of the whole history)."""
APPROVED_KEY = "kimi_agent.approved_calls"
"""Session state: call ids approved and started but whose result is not yet committed."""
REJECTED_TEXT = (
    "该操作已被人工审核拒绝：{reason}。The action was rejected by a human reviewer: {reason}. "
    "Do not retry it; explain this to the user."
)


class RunLoop(Generic[OutputT]):
    """The state and steps of one run; it reads its agent only through `config`."""

    def __init__(
        self,
        config: RunConfig,
        *,
        client: GatewayClient,
        run_id: str,
        deps: Any,
        session: Session | None,
        history: list[Message],
        emit: Emit | None,
        stream: bool,
        base: int = 0,
        input_filter: InputFilter | None = None,
        filter_until: int = 0,
        known_tokens: Sequence[tuple[Message, int]] = (),
    ) -> None:
        self.config = config
        self.base = base
        """The position in the session of `history[0]` (the stored window start)."""
        self._cut = self._stored_cut = base
        self.client = client
        self.run_id = run_id
        self.deps = deps
        self.session = session
        self.messages: list[Message] = history
        self.new_messages: list[Message] = []
        self.steps: list[StepRecord] = []
        self.usage = RunUsage()
        self.signals = RunSignals()
        self.signals.events = emit
        self.signals.messages = self.messages
        self.hooks = run_hooks(config.hooks)
        """The hooks of this run (the agent's and the global ones), None without any."""
        self.signals.around = around_tool(self.hooks)
        self._input_filter = input_filter
        self._filter_until = filter_until
        """The session position where the hand-off happened (the filter applies before it)."""
        self._instructions: str | None = None
        self._guard: StreamGuard | None = None
        self.emit = emit
        self.stream = stream
        self._wire: dict[int, list[Any]] = {}
        """id(message) -> [message, token estimate, wire JSON bytes or None]: each message is
        estimated and encoded at most once per run (the estimate comes from the session when
        it keeps one, see `TokenCountedSession`)."""
        for message, count in known_tokens:
            self._wire[id(message)] = [message, count, None]
        self._total = 0
        """The token estimate of `messages[:_counted]`, extended by what was committed since,
        so a step does not walk the whole history to know its size."""
        self._counted = 0
        self._json_cache: dict[int, tuple[Any, bytes]] = {}
        """id(system message dict or tools list) -> (it, its JSON bytes)."""
        self._failures: dict[str, int] = {}
        self._output_retries = 0
        self._reasked_step = 0
        self._group: anyio.abc.TaskGroup | None = None
        self._call: ModelCall | None = None
        self._starter: EarlyStarter | None = None
        self._tail: Message | None = history[-1] if history else None
        """The newest message this run knows is in the session (to notice other writers)."""
        self._scratch: list[Message] = []
        """Messages sent to the model but not kept (e.g. invalid structured output)."""

    # ------------------------------------------------------------------ messages

    def _entry(self, message: Message) -> list[Any]:
        cached = self._wire.get(id(message))
        if cached is None or cached[0] is not message:
            wire = message.to_wire()
            cached = self._wire[id(message)] = [message, estimate_wire_message(wire),
                                                dumps(wire).encode()]
        return cached

    def _tokens(self, message: Message) -> int:
        """The token estimate of a message, computed once per run."""
        count: int = self._entry(message)[1]
        return count

    def _json(self, message: Message) -> bytes:
        """The wire form of a message as JSON bytes, encoded once per run."""
        cached = self._entry(message)
        if cached[2] is None:
            cached[2] = dumps(message.to_wire()).encode()
        data: bytes = cached[2]
        return data

    def _history_tokens(self) -> int:
        """The token estimate of `messages`: a running total that adds the messages committed
        since the last call, recounted only when the list changed other than by appending
        (a resumed step's results put back in call order)."""
        messages = self.messages
        if not 0 <= self._counted <= len(messages):
            self._total, self._counted = 0, 0
        if self._counted < len(messages):
            self._total += sum(self._tokens(m) for m in messages[self._counted:])
            self._counted = len(messages)
        return self._total

    def _fixed_json(self, value: Any) -> bytes:
        """JSON bytes of the system message or the tools array, cached by identity (both
        are computed once by `RequestParts` and reused, so the prefix stays stable)."""
        cached = self._json_cache.get(id(value))
        if cached is None or cached[0] is not value:
            if len(self._json_cache) > 8:
                self._json_cache.clear()
            cached = self._json_cache[id(value)] = (value, dumps(value).encode())
        return cached[1]

    async def commit(self, items: Sequence[Message]) -> None:
        """Append a completed step to the run and to the session, as one unit.

        Raises:
            ConcurrentRunError: another writer appended to the session since this run last
                read or wrote it (nothing is written then).
        """
        if self.session is not None:
            with anyio.CancelScope(shield=True):
                await self._check_unchanged()
                await self.session.add_items(items)
        self.messages.extend(items)
        self.new_messages.extend(items)
        if items:
            self._tail = items[-1]
        if self._cut > self._stored_cut and isinstance(self.session, SessionState):
            with anyio.CancelScope(shield=True):
                await self.session.set_state(WINDOW_KEY, self._cut)
            self._stored_cut = self._cut

    async def _check_unchanged(self) -> None:
        session = self.session
        if session is None or isinstance(session, MemorySession):
            return  # in this process: runs on it are serialised by the conversation lock
        newest = await session.get_items(limit=1)
        latest = newest[-1] if newest else None
        if (latest is None) != (self._tail is None) or (
                latest is not None and self._tail is not None
                and latest.model_dump(exclude_none=True)
                != self._tail.model_dump(exclude_none=True)):
            raise ConcurrentRunError(
                f"session {session.session_id!r} was changed by another run while this one "
                "was under way; this run stopped before writing. Run again to continue.",
                messages=self.messages)

    async def start(self, prompt: str) -> None:
        """Open the run with the user's message: the instructions of this run are fixed
        now, input guardrails see the message, and it is committed.

        Raises:
            GuardrailTripped: an input guardrail tripped (the message and the guardrail's
                reply are stored, so the conversation stays valid).
        """
        self._instructions = await self.config.request.resolve(self._context(0, ""))
        guardrails = self.config.input_guardrails
        if not guardrails:
            await self.commit([UserMessage(content=prompt)])
            return
        try:
            prompt = await run_guardrails(guardrails, self._context(0, ""), prompt,
                                          kind="input", messages=self.messages)
        except GuardrailTripped as tripped:
            # what is stored is what earlier guardrails made of it (a masked phone number
            # stays masked), never the raw text when one of them rewrote it
            kept = tripped.checked_text if tripped.checked_text is not None else prompt
            await self.commit([UserMessage(content=kept),
                               AssistantMessage(content=tripped.reply or "…")])
            tripped.messages = list(self.messages)
            raise
        await self.commit([UserMessage(content=prompt)])

    async def _after_tools(self, record: StepRecord) -> None:
        """What tools asked of the run in a step: a tripped tool guardrail ends it, a
        `transfer_to_…` call hands the conversation to another agent."""
        tripped = self.signals.tripped
        if isinstance(tripped, GuardrailTripped):
            self.signals.tripped = None
            await self.commit([AssistantMessage(content=tripped.reply or "…")])
            tripped.messages = list(self.messages)
            raise tripped
        target = self.signals.transfer
        if target is None:
            return
        self.signals.transfer = None
        handoff = self.config.handoffs.get(target)
        if handoff is None:
            return
        source = self.config.name
        await handoff.agent.registry.refresh()
        self.config = handoff.agent._config
        self._input_filter = handoff.input_filter
        self._filter_until = self.base + len(self.messages)
        self._failures.clear()
        self._instructions = await self.config.request.resolve(
            self._context(record.index, ""))
        if isinstance(self.session, SessionState):
            with anyio.CancelScope(shield=True):
                await self.session.set_state(ACTIVE_AGENT_KEY, {
                    "agent": target, "via": source, "at": self._filter_until})
        log = resolve(self.config.logger)
        if log is not None:
            log.info("handoff", run_id=self.run_id, step=record.index, from_agent=source,
                     to_agent=target)
        if self.emit is not None:
            await self.emit(ev.HandoffActivated(record.index, source, target))

    async def _guard_answer(self, message: AssistantMessage, record: StepRecord) -> None:
        """Output guardrails on a final text answer, before it is stored or shown."""
        text = message.text
        try:
            checked = await run_guardrails(self.config.output_guardrails,
                                           self._context(record.index, record.model), text,
                                           kind="output", messages=self.messages)
        except GuardrailTripped as tripped:
            self._scratch.clear()
            await self.commit([AssistantMessage(content=tripped.reply or "…",
                                                model=message.model)])
            tripped.messages = list(self.messages)
            if self.emit is not None and tripped.reply:
                await self.emit(ev.TextDelta(record.index, tripped.reply))
            raise
        if checked != text:
            message.content = checked
            record.text = checked
        if self._guard is not None and self.emit is not None:
            rest = self._guard.finish(checked)
            if rest:
                await self.emit(ev.TextDelta(record.index, rest))

    async def repair(self) -> None:
        """Make a stored history valid again: calls left without a result by a crash get an
        'interrupted' result; calls waiting for approval must be resumed first.

        Raises:
            ApprovalError: the last step has calls waiting for a person's decision.
        """
        call_message, answered = last_tool_step(self.messages)
        if call_message is None:
            return
        registry = self.config.registry
        missing = [c for c in call_message.tool_calls or () if c.id not in answered]
        started = set(await approved_calls(self.session))
        waiting = [c.id for c in missing if c.function.name in registry
                   and registry.get(c.function.name).requires_approval
                   and c.id not in started]
        if waiting:
            name = self.session.session_id if self.session is not None else "?"
            raise ApprovalError(
                f"session {name!r} has calls waiting for approval {waiting}: decide them "
                "with agent.resume(session, approved=[...], rejected={...}) first")
        if missing:
            await self.commit([
                ToolMessage(tool_call_id=c.id, content=UNKNOWN_OUTCOME_TEXT if c.id in started
                            else INTERRUPTED_TEXT) for c in missing])
            await forget_approved(self.session, [c.id for c in missing])

    def _context(self, step: int, model: str,
                 reply: AssistantMessage | None = None) -> RunContext[Any]:
        return RunContext(deps=self.deps, run_id=self.run_id, step=step, model=model,
                          usage=self.usage, signals=self.signals,
                          session_id=None if self.session is None else self.session.session_id,
                          reply_id=None if reply is None else reply_id_of(reply))

    # ------------------------------------------------------------------ requests

    def _build(self, profile: ModelProfile) -> bytes:
        """The request body as JSON bytes, joined from each message's cached JSON: the same
        bytes `dumps` of the whole body gives, without encoding the history again."""
        config = self.config
        history = self.messages + self._scratch if self._scratch else self.messages
        filtered = self._input_filter is not None
        if self._input_filter is not None:
            # the filter decides what of the history before the hand-off the target sees;
            # the target's own steps since then are sent as they are
            split = max(0, min(len(history), self._filter_until - self.base))
            history = self._input_filter(list(history[:split])) + list(history[split:])
        if filtered:
            history_tokens = sum(self._tokens(m) for m in history)
        else:
            history_tokens = self._history_tokens() + sum(self._tokens(m)
                                                          for m in self._scratch)
        system, system_tokens = config.request.system_prompt(profile, self._instructions)
        tools, tools_tokens = config.request.tools()
        fixed = system_tokens + tools_tokens
        reserve = min(profile.max_output, config.max_tokens or profile.max_output)
        budget = profile.context_window - fixed - reserve
        budget -= profile.margin(budget)
        if history_tokens > budget:
            trimmed = config.trim_policy.trim(history, [self._tokens(m) for m in history],
                                              budget)
            self._note_cut(history, trimmed, profile)
            history = trimmed
            history_tokens = sum(self._tokens(m) for m in history)
        prompt_tokens = fixed + history_tokens
        cache = self._wire
        parts = []
        for m in history:          # the cache hit inlined: this runs for every message sent
            hit = cache.get(id(m))
            parts.append(hit[2] if hit is not None and hit[0] is m and hit[2] is not None
                         else self._json(m))
        if system:
            parts.insert(0, self._fixed_json(system))
        rest: dict[str, Any] = {
            "max_tokens": profile.clamp_max_tokens(prompt_tokens, config.max_tokens)}
        # the key order of the body as one dict: model, messages, max_tokens, tools, ...
        out = [b'{"model":', dumps(profile.name).encode(), b',"messages":[', b",".join(parts),
               b"],", dumps(rest).encode()[1:-1]]
        if tools:
            out += [b',"tools":', self._fixed_json(tools)]
        tail: dict[str, Any] = {}
        if config.output is not None:
            tail["response_format"] = config.output.response_format(profile)
        if self.stream:
            tail["stream"] = True
        if tail:
            out += [b",", dumps(tail).encode()[1:-1]]
        out.append(b"}")
        return b"".join(out)

    def _note_cut(self, history: list[Message], kept: list[Message], profile: ModelProfile
                  ) -> None:
        """Remember where a trim made the history start, when the policy only ever drops
        from the front and the request went to the largest window: runs after this one can
        read the session from there (the prompt then starts at the same message)."""
        if not isinstance(self.config.trim_policy, CacheAwareTrim | KeepRecentTurns):
            return
        if profile.context_window < max(p.context_window for p in self._profiles()):
            return
        offset = len(history) - len(kept)
        if not kept or offset <= 0 or offset > len(self.messages) or \
                kept[0] is not history[offset] or kept[-1] is not history[-1]:
            return
        self._cut = max(self._cut, self.base + offset)

    def _profiles(self) -> list[ModelProfile]:
        router = self.config.router
        return [router.primary] if router.fallback is None else [router.primary,
                                                                  router.fallback]

    def _prompt_estimate(self) -> int:
        request = self.config.request
        return request.system_prompt(self.config.router.primary, self._instructions)[1] + \
            request.tools()[1] + self._history_tokens()

    async def _model_call(self, step: int) -> tuple[ChatCompletion, ModelProfile, str | None]:
        hooks = self.hooks
        try:
            if hooks is None:
                return await self._route(step)
            call = ModelCall(self.run_id, step, self.config.router.primary.name, self.stream,
                             self.config.max_tokens, str(getattr(self.client, "base_url", "")))
            self._call = call
            return await hooks.on_model_call(call, lambda: self._route(step))
        except GatewayError as error:
            raise ModelFailedError(
                f"the model call of step {step} failed: {error}",
                messages=self.messages, cause=error, partial=error.partial,
            ) from error

    async def _route(self, step: int) -> tuple[ChatCompletion, ModelProfile, str | None]:
        router = self.config.router
        on_fallback = self._on_fallback(step) if self.emit is not None or \
            self.hooks is not None else None
        if not self.stream:
            return await router.complete(self.client, self._build, self._prompt_estimate(),
                                         on_fallback)
        return await router.stream(self.client, self._build, self._prompt_estimate(),
                                   self._on_chunk(step), on_fallback)

    def _on_fallback(self, step: int) -> Callable[[str, str, str], Awaitable[None]]:
        async def on_fallback(source: str, target: str, reason: str) -> None:
            if self._starter is not None and target not in self._parallel_names():
                self._starter.stop()
            if self.hooks is not None and self._call is not None:
                self.hooks.on_model_event(self._call, "fallback", {
                    "from_model": source, "to_model": target, "reason": reason})
            if self.emit is not None:
                await self.emit(ev.FallbackActivated(step, source, target, reason))
        return on_fallback

    def _on_chunk(self, step: int) -> Callable[[ChatCompletionChunk], Awaitable[None]]:
        async def on_chunk(chunk: ChatCompletionChunk) -> None:
            if self._starter is not None:
                self._starter.feed(chunk)
            if self.emit is None:
                return
            for choice in chunk.choices:
                delta = choice.delta
                if delta.reasoning_content:
                    await self.emit(ev.ReasoningDelta(step, delta.reasoning_content))
                if delta.content:
                    text = delta.content if self._guard is None else \
                        await self._guard.feed(delta.content)
                    if text:
                        await self.emit(ev.TextDelta(step, text))
        return on_chunk

    # ------------------------------------------------------------------ the loop

    async def drive(self, *, announce: bool = True) -> RunResult[OutputT]:
        """Ask, run tools, repeat until an answer; `announce` emits `RunStarted` first.

        On the streamed path with read-only tools, a task group holds the calls that start
        while a reply is still streaming (see `EarlyStarter`)."""
        if not (self.stream and self._early_possible()):
            return await self._drive(announce)
        raised: BaseException | None = None
        result: RunResult[OutputT] | None = None
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                result = await self._drive(announce)
            except BaseException as error:  # re-raised below as itself, not in a group
                raised = error
            finally:
                self._group = None
                group.cancel_scope.cancel()
        if raised is not None:
            raise raised
        assert result is not None
        return result

    def _parallel_names(self) -> set[str]:
        router = self.config.router
        return {p.name for p in (router.primary, router.fallback)
                if p is not None and p.parallel_tool_calls}

    def _early_possible(self) -> bool:
        return self.config.router.primary.parallel_tool_calls and any(
            getattr(t, "read_only", False) for t in self.config.registry)

    async def _drive(self, announce: bool) -> RunResult[OutputT]:
        if announce and self.emit is not None:
            await self.emit(ev.RunStarted(self.run_id, self.config.router.primary.name))
        while True:
            config = self.config       # a hand-off changes it between steps
            step = len(self.steps) + 1
            if step > config.max_steps:
                raise MaxStepsExceededError(
                    f"the model was still calling tools after {config.max_steps} steps",
                    messages=self.messages)
            if config.usage_limits.would_exceed_requests(self.usage):
                raise UsageLimitExceededError(
                    f"the run reached its limit of {config.usage_limits.request_limit} "
                    "requests", messages=self.messages)
            started = time.perf_counter()
            self._starter = self._early_starter(step)
            if self.stream and self.config.output_guardrails:
                self._guard = StreamGuard(self.config.output_guardrails,
                                          self._context(step, ""),
                                          holdbacks_of(self.config.output_guardrails))
            completion, profile, reason = await self._model_call(step)
            self.usage.add(completion.usage)
            if profile.price is not None:
                self.usage.cost += profile.price.cost(completion.usage)
            message = completion.message
            message.model = profile.name
            if self._unusable(message, completion.finish_reason, step, profile.name):
                continue
            record = StepRecord(
                index=step, model=profile.name, finish_reason=completion.finish_reason,
                text=message.text, reasoning=message.reasoning_content or "",
                usage=completion.usage, latency=time.perf_counter() - started,
                fallback_reason=reason or None, call=completion.call_info,
            )
            self.steps.append(record)
            self._log_step(record)
            exceeded = config.usage_limits.exceeded(self.usage)
            if message.tool_calls:
                status = await self._tool_step(message, message.tool_calls, profile, record)
                await self._after_tools(record)
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

    def _early_starter(self, step: int) -> EarlyStarter | None:
        if self._group is None:
            return None
        primary = self.config.router.primary.name
        return EarlyStarter(self._group, self.config.registry, self.config.executor,
                            lambda: self._context(step, primary),
                            self._on_call(step) if self.emit is not None else None,
                            frozenset(self._parallel_names()))

    async def _with_early(
        self, calls: list[ToolCall], records: list[ToolCallRecord],
        early: list[tuple[ToolCall, Started]], ctx: RunContext[Any], profile: ModelProfile,
        record: StepRecord, approved: frozenset[str],
    ) -> list[ToolCallRecord]:
        """The step's records in call order: the early ones awaited, any early call that was
        cancelled before it finished run now."""
        by_id = {r.call_id: r for r in records}
        for call, started in early:
            done = await EarlyStarter.result(started, call)
            if done is None:
                [done] = await self.config.executor.execute(
                    [call], ctx, parallel=True, skip_approval=approved,
                    on_call=self._on_call(record.index) if self.emit is not None else None)
            by_id[call.id] = done
        return [by_id[c.id] for c in calls]

    def _unusable(self, message: AssistantMessage, finish_reason: str | None, step: int,
                  model: str) -> bool:
        """True when the reply cannot be committed and is asked again (once per step).

        Raises:
            InvalidToolCallIdsError, EmptyAnswerError: the second reply of the step could
                not be used either.
        """
        calls = message.tool_calls
        if calls:
            ids = [c.id for c in calls]
            if all(ids) and len(set(ids)) == len(ids):
                return False
            error: type[UnusableReplyError] = InvalidToolCallIdsError
            what = f"tool calls with duplicate or empty ids {ids!r}"
        elif message.text or finish_reason == "length":
            return False
        else:
            error, what = EmptyAnswerError, "neither text nor tool calls"
        log = resolve(self.config.logger)
        if log is not None:
            log.warning("unusable_reply", run_id=self.run_id, step=step, model=model,
                        problem=what, retried=self._reasked_step != step)
        if self._reasked_step == step:
            raise error(f"the model's reply in step {step} had {what} twice; nothing of it "
                        "was stored", messages=self.messages)
        self._reasked_step = step
        return True

    async def _tool_step(
        self, message: AssistantMessage | None, calls: list[ToolCall], profile: ModelProfile,
        record: StepRecord, approved: frozenset[str] = frozenset(),
        decided: Sequence[ToolCallRecord] = (), call_order: Sequence[str] = (),
        reply: AssistantMessage | None = None,
    ) -> RunStatus | None:
        """Run the calls of a reply and commit the step (with `message` unless it is None,
        i.e. already committed); returns the status that ends the run, if any.

        A fresh step runs every call of the reply; a resumed step (`message` None) runs the
        approved calls and adds `decided`, the records of calls a person rejected. Both go
        through here, so failures are counted and results ordered the same way."""
        ctx = self._context(record.index, profile.name, message or reply)
        starter, self._starter = self._starter, None
        early = [] if starter is None or not profile.parallel_tool_calls else [
            (call, started) for call in calls if (started := starter.claim(call)) is not None]
        if starter is not None:
            starter.discard()
        claimed = {call.id for call, _ in early}
        records = await self.config.executor.execute(
            [c for c in calls if c.id not in claimed] if early else calls, ctx,
            parallel=profile.parallel_tool_calls,
            on_call=self._on_call(record.index) if self.emit is not None else None,
            skip_approval=approved,
        )
        if early:
            records = await self._with_early(calls, records, early, ctx, profile, record,
                                             approved)
        if decided:
            for refusal in decided:
                if self.emit is not None:
                    await self.emit(ev.ToolCallFinished(record.index, refusal))
            rank = {call_id: i for i, call_id in enumerate(call_order)}
            records = sorted([*records, *decided], key=lambda r: rank[r.call_id])
        record.tool_calls.extend(records)
        step_messages: list[Message] = [] if message is None else [message]
        step_messages.extend(tool_message(r) for r in records if r.status != "pending_approval")
        self._scratch.clear()
        await self.commit(step_messages)
        if message is None:
            ordered = in_call_order(self.messages)
            if ordered is not self.messages:
                self.messages[:] = ordered
                self._counted = -1
        if self.emit is not None:
            await self.emit(ev.StepFinished(record))
        self._count_failures(records)
        if any(r.status == "pending_approval" for r in records):
            return "pending_approval"
        if self.signals.handoff is not None:
            return "handoff"
        return None

    async def resume(self, call_message: AssistantMessage, approved: frozenset[str],
                     rejected: dict[str, str], pending: dict[str, PendingApproval]
                     ) -> RunResult[OutputT]:
        """Finish the step that waited for approval, then go on as a fresh run would: the
        approved calls run, the rejected ones answer the model with the reason."""
        profile = self.config.profile_named(call_message.model)
        self._instructions = await self.config.request.resolve(self._context(0, ""))
        if self.emit is not None:
            await self.emit(ev.RunStarted(self.run_id, profile.name))
        record = StepRecord(index=1, model=profile.name, finish_reason="tool_calls")
        self.steps.append(record)
        calls = [c for c in call_message.tool_calls or () if c.id in approved]
        refusals = [
            ToolCallRecord(call_id=call_id, name=pending[call_id].tool,
                           arguments=pending[call_id].raw_arguments, status="rejected",
                           result=REJECTED_TEXT.format(reason=reason))
            for call_id, reason in rejected.items()
        ]
        order = [c.id for c in call_message.tool_calls or ()]
        # At most once: the decision is recorded before the approved calls run, and their
        # execution and the commit of their results are shielded from cancellation (a
        # client that goes away, Ctrl-C) — a timeout still bounds each call.
        await remember_approved(self.session, [c.id for c in calls])
        with anyio.CancelScope(shield=bool(calls)):
            status = await self._tool_step(None, calls, profile, record, approved, refusals,
                                           order, call_message)
            await forget_approved(self.session, [c.id for c in calls])
        if status is not None:
            return await self._finish(status, None, "tool_calls")
        return await self.drive(announce=False)

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
                if self._failures[r.name] > self.config.tool_retries:
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
        spec = self.config.output
        if spec is None:
            if self.config.output_guardrails:
                await self._guard_answer(message, record)
            await self._commit_answer(message, record)
            return message.text
        try:
            output = spec.validate(message.text)
        except ValueError as error:
            if self._output_retries >= self.config.output_retries:
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
        if output is None and self.config.output is None:
            output = ""
        result: RunResult[OutputT] = RunResult(
            output=output,
            run_id=self.run_id, messages=self.messages, new_messages=self.new_messages,
            usage=self.usage, steps=self.steps, status=status,
            pending_approvals=pending_approvals(self.messages, self.config.registry) if
            status == "pending_approval" else [],
            handoff=self.signals.handoff, finish_reason=finish_reason,
        )
        if self.emit is not None:
            await self.emit(ev.RunFinished(result))
        return result

    def _log_step(self, record: StepRecord) -> None:
        log = resolve(self.config.logger)
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
            request_id=record.call.request_id if record.call is not None else None,
        )


class _Retry:
    pass


_RETRY: Any = _Retry()


def tool_message(record: ToolCallRecord) -> ToolMessage:
    return ToolMessage(tool_call_id=record.call_id, content=record.result)


async def read_history(session: Session) -> tuple[int, list[Message]]:
    """The stored history a run may send, and its position in the session: from the stored
    window start on when the session can read a range (not the whole conversation)."""
    base, messages, _ = await read_window(session)
    return base, messages


async def read_window(session: Session) -> tuple[int, list[Message], list[int] | None]:
    """`read_history` with each message's stored token estimate when the session keeps them
    (`TokenCountedSession`), else None (the run estimates them)."""
    start = 0
    if isinstance(session, WindowedSession) and isinstance(session, SessionState):
        stored = await session.get_state(WINDOW_KEY)
        if isinstance(stored, int) and stored > 0:
            start = stored
    if isinstance(session, TokenCountedSession):
        pairs = await session.get_since_with_tokens(start)
        return start, [m for m, _ in pairs], [t for _, t in pairs]
    if start and isinstance(session, WindowedSession):
        return start, await session.get_since(start), None
    return 0, await session.get_items(), None


async def approved_calls(session: Session | None) -> list[str]:
    """Calls approved and started whose results are not committed yet (none without a
    session that keeps state)."""
    if not isinstance(session, SessionState):
        return []
    return list(await session.get_state(APPROVED_KEY) or [])


async def remember_approved(session: Session | None, call_ids: Sequence[str]) -> None:
    if call_ids and isinstance(session, SessionState):
        with anyio.CancelScope(shield=True):
            known = await approved_calls(session)
            await session.set_state(APPROVED_KEY, [*known, *(i for i in call_ids
                                                             if i not in known)])


async def forget_approved(session: Session | None, call_ids: Sequence[str]) -> None:
    if call_ids and isinstance(session, SessionState):
        with anyio.CancelScope(shield=True):
            known = await approved_calls(session)
            if any(i in known for i in call_ids):
                rest = [i for i in known if i not in call_ids]
                await session.set_state(APPROVED_KEY, rest or None)


def pending_approvals(messages: Sequence[Message], registry: ToolRegistry,
                      started: Collection[str] = ()) -> list[PendingApproval]:
    """Calls of the last tool step that have no result yet and wait for a person
    (`started`: approved calls already running or in doubt, which wait for nobody)."""
    call_message, answered = last_tool_step(messages)
    if call_message is None:
        return []
    pending = []
    for call in call_message.tool_calls or ():
        if call.id in answered or call.id in started:
            continue
        try:
            # JSON-safe (a pydantic-model argument becomes its dict): for people and UIs
            arguments = to_jsonable_python(registry.get(call.function.name).parse_arguments(
                call.function.arguments))
        except Exception:
            arguments = {}
        pending.append(PendingApproval(call.id, call.function.name, arguments,
                                       call.function.arguments))
    return pending


def in_call_order(messages: list[Message]) -> list[Message]:
    """The history as the gateway must see it: each step's tool results in the order of its
    calls, exactly one result per call.

    A step resumed after an approval stores the approved results after the ones that ran at
    once, so results are put back in call order. A step in the middle of the history whose
    calls lack results (two runs raced on a session, or an older store) gets an 'interrupted'
    result for each missing one, and a result for no call of its step is left out: the
    gateway refuses both, and every later run would fail. The last step is left as it is
    (its calls may be waiting for approval; `RunLoop.repair` settles it). Nothing stored is
    changed. Returns `messages` itself when nothing needs to change (the common case).
    """
    out: list[Message] | None = None
    i, n = 0, len(messages)
    while i < n:
        message = messages[i]
        i += 1
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            if out is not None:
                out.append(message)
            continue
        start = i
        while i < n and isinstance(messages[i], ToolMessage):
            i += 1
        results = [m for m in messages[start:i] if isinstance(m, ToolMessage)]
        fixed = _step_results(message.tool_calls, results, at_end=i == n)
        if fixed is not None and out is None:
            out = list(messages[:start - 1])
        if out is not None:
            out.append(message)
            out.extend(results if fixed is None else fixed)
    return messages if out is None else out


def _step_results(calls: list[ToolCall], results: list[ToolMessage], *, at_end: bool
                  ) -> list[ToolMessage] | None:
    """The results of one step fixed as `in_call_order` says, or None when they are fine."""
    if len(results) == len(calls) and all(
            m.tool_call_id == c.id for m, c in zip(results, calls, strict=True)) and \
            len({c.id for c in calls}) == len(calls):
        return None                  # the common case: one result per call, in call order
    order = {call.id: k for k, call in enumerate(calls)}
    ranks = [order.get(m.tool_call_id, -1) for m in results]
    complete = len(results) == len(calls)
    if -1 not in ranks and ranks == sorted(ranks) and len(set(ranks)) == len(ranks) and (
            complete or at_end):
        return None
    by_call: dict[str, ToolMessage] = {}
    for m in results:
        if m.tool_call_id in order:
            by_call.setdefault(m.tool_call_id, m)
    fixed = []
    for call in calls:
        found = by_call.get(call.id)
        if found is not None:
            fixed.append(found)
        elif not at_end:
            fixed.append(ToolMessage(tool_call_id=call.id, content=INTERRUPTED_TEXT))
    return fixed


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
