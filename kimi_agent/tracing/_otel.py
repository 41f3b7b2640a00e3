"""`Instrumentation`: run hooks that open OpenTelemetry GenAI spans and record metrics.

Spans are opened around the boxes of a run (the hooks), never inside them, so the loop, the
router and the executor know nothing of tracing. The run span is made current for the run's
task, so model-call and tool spans (and a tool's own spans, in its task or worker thread) are
its children.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from kimi_agent import __version__
from kimi_agent.agent._hooks import ModelCall, ModelReply, RunHooks, RunInfo, ToolExecution
from kimi_agent.agent._result import RunResult
from kimi_agent.gateway._transport import retry_observer
from kimi_agent.wire import dumps

PROVIDER = "moonshot"
"""`gen_ai.provider.name`: the Kimi models are Moonshot's (served through the gateway)."""


class Instrumentation(RunHooks):
    """OpenTelemetry spans and metrics for runs, model calls and tool executions.

    `record_content=True` adds the messages sent and received, tool arguments and results
    (customer conversations: off by default)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None,
                 record_content: bool = False) -> None:
        self.record_content = record_content
        self._tracer = trace.get_tracer("kimi_agent", __version__,
                                        tracer_provider=tracer_provider)
        meter = metrics.get_meter("kimi_agent", __version__, meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used")
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration")
        self._fallbacks = meter.create_counter(
            "kimi_agent.fallbacks", unit="{fallback}",
            description="Model calls answered by the fallback model")
        self._tool_calls = meter.create_counter(
            "kimi_agent.tool_calls", unit="{call}", description="Tool executions by outcome")
        self._model_spans: dict[tuple[str, int], Span] = {}

    # ---------------------------------------------------------------- the run

    async def on_run(self, info: RunInfo,
                     proceed: Callable[[], Awaitable[RunResult[Any]]]) -> RunResult[Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": PROVIDER,
            "gen_ai.agent.name": info.agent_name, "kimi_agent.run.id": info.run_id,
            "kimi_agent.run.kind": info.kind, "kimi_agent.run.streamed": info.streamed}
        if info.session_id is not None:
            attributes["gen_ai.conversation.id"] = info.session_id
        with self._tracer.start_as_current_span(
                f"invoke_agent {info.agent_name}", kind=SpanKind.INTERNAL,
                attributes=attributes, record_exception=False,
                set_status_on_exception=False) as span:
            try:
                result = await proceed()
            except BaseException as error:
                _failed(span, error)
                raise
            usage = result.usage
            span.set_attributes({
                "kimi_agent.run.status": result.status,
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
                "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
                "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
                "kimi_agent.usage.requests": usage.requests,
                "kimi_agent.usage.cost_usd": usage.cost,
            })
            if self.record_content and isinstance(result.output, str):
                span.set_attribute("gen_ai.output.messages", dumps(
                    [{"role": "assistant", "parts": [{"type": "text",
                                                      "content": result.output}]}]))
            return result

    # ---------------------------------------------------------------- model calls

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": call.primary, "gen_ai.request.stream": call.streamed,
            "kimi_agent.step": call.step}
        if call.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = call.max_tokens
        if call.server:
            parts = urlsplit(call.server)
            if parts.hostname:
                attributes["server.address"] = parts.hostname
            if parts.port:
                attributes["server.port"] = parts.port
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
                f"chat {call.primary}", kind=SpanKind.CLIENT, attributes=attributes,
                record_exception=False, set_status_on_exception=False) as span:
            key = (call.run_id, call.step)
            self._model_spans[key] = span

            def on_retry(model: str, error: Exception, attempt: int, delay: float | None
                         ) -> None:
                span.add_event("retry" if delay is not None else "attempt_failed", {
                    "gen_ai.request.model": model, "kimi_agent.attempt": attempt,
                    "error.type": type(error).__name__,
                    "kimi_agent.retry.delay_s": -1.0 if delay is None else delay})

            observing = retry_observer.set(on_retry)
            metric_attributes = {"gen_ai.operation.name": "chat",
                                 "gen_ai.provider.name": PROVIDER,
                                 "gen_ai.request.model": call.primary}
            try:
                completion, profile, reason = await proceed()
            except BaseException as error:
                _failed(span, error)
                self._duration.record(time.perf_counter() - started, {
                    **metric_attributes, "error.type": type(error).__name__})
                raise
            finally:
                self._model_spans.pop(key, None)
                retry_observer.reset(observing)
            usage = completion.usage
            span.set_attributes({
                "gen_ai.response.model": profile.name,
                "gen_ai.response.id": completion.id,
                "gen_ai.response.finish_reasons": [c.finish_reason or "" for c in
                                                   completion.choices],
            })
            response = {**metric_attributes, "gen_ai.response.model": profile.name}
            if usage is not None:
                span.set_attributes({
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
                    "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
                })
                self._tokens.record(usage.prompt_tokens,
                                    {**response, "gen_ai.token.type": "input"})
                self._tokens.record(usage.completion_tokens,
                                    {**response, "gen_ai.token.type": "output"})
            if profile.price is not None:
                span.set_attribute("kimi_agent.usage.cost_usd", profile.price.cost(usage))
            for name, value in _limits(completion).items():
                span.set_attribute(name, value)
            if reason:
                span.set_attribute("kimi_agent.fallback.reason", reason)
            if self.record_content:
                span.set_attribute("gen_ai.output.messages", dumps(
                    [completion.message.to_wire()]))
            self._duration.record(time.perf_counter() - started, response)
            return completion, profile, reason

    def on_model_event(self, call: ModelCall, name: str, attributes: dict[str, Any]) -> None:
        span = self._model_spans.get((call.run_id, call.step))
        if span is not None:
            span.add_event(name, {k: str(v) for k, v in attributes.items()})
        if name == "fallback":
            self._fallbacks.add(1, {"gen_ai.request.model": call.primary,
                                    "kimi_agent.fallback.to": str(attributes.get("to_model"))})

    # ---------------------------------------------------------------- tools

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        tool = execution.tool
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.name,
            "gen_ai.tool.call.id": execution.call_id, "gen_ai.tool.type": "function"}
        if tool.description:
            attributes["gen_ai.tool.description"] = tool.description[:500]
        if self.record_content:
            attributes["gen_ai.tool.call.arguments"] = _json(execution.arguments)
        with self._tracer.start_as_current_span(
                f"execute_tool {tool.name}", kind=SpanKind.INTERNAL, attributes=attributes,
                record_exception=False, set_status_on_exception=False) as span:
            try:
                value = await proceed()
            except BaseException as error:
                outcome = "cancelled" if _is_cancel(error) else "error"
                span.set_attribute("kimi_agent.tool.outcome", outcome)
                _failed(span, error)
                self._tool_calls.add(1, {"gen_ai.tool.name": tool.name,
                                         "kimi_agent.tool.outcome": outcome})
                raise
            span.set_attribute("kimi_agent.tool.outcome", "ok")
            if self.record_content:
                span.set_attribute("gen_ai.tool.call.result", _json(value))
            self._tool_calls.add(1, {"gen_ai.tool.name": tool.name,
                                     "kimi_agent.tool.outcome": "ok"})
            return value


def _failed(span: Span, error: BaseException) -> None:
    if _is_cancel(error):
        span.set_attribute("error.type", "cancelled")
    else:
        span.set_attribute("error.type", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, str(error)[:500] or type(error).__name__))


def _is_cancel(error: BaseException) -> bool:
    import anyio

    return isinstance(error, anyio.get_cancelled_exc_class())


def _json(value: Any) -> str:
    try:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                               default=str)
    except (TypeError, ValueError):
        return repr(value)


def _limits(completion: Any) -> dict[str, Any]:
    """The gateway's ids, spend-cap and quota headers and the attempts of one call (from the
    client's `CallInfo` on the reply; none of it is content)."""
    info = getattr(completion, "call_info", None)
    if info is None:
        return {}
    found: dict[str, Any] = {"kimi_agent.gateway.attempts": info.attempts}
    for attr, name in (("request_id", "kimi_agent.gateway.request_id"),
                       ("trace_id", "kimi_agent.gateway.trace_id"),
                       ("rate_limit_limit", "kimi_agent.gateway.ratelimit.limit_usd"),
                       ("rate_limit_remaining", "kimi_agent.gateway.ratelimit.remaining_usd"),
                       ("quota_remaining_credits", "kimi_agent.gateway.quota.remaining_credits"),
                       ("org_quota_remaining_credits",
                        "kimi_agent.gateway.org_quota.remaining_credits")):
        value = getattr(info, attr, None)
        if value is not None:
            found[name] = value
    reset = getattr(info, "rate_limit_reset", None)
    if reset is not None:
        found["kimi_agent.gateway.ratelimit.reset"] = reset.isoformat()
    return found
