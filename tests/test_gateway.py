"""GatewayClient over real loopback HTTP against a scripted server with Kimi-shaped bodies."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import pytest

from kimi_agent import GatewayClient, RetryPolicy
from kimi_agent.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    GatewayConnectionError,
    GatewayError,
    IncompleteStreamError,
    MissingAPIKeyError,
    PaymentRequiredError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from kimi_agent.wire import ChatRequest
from tests.scripted_http import Answer, ScriptedServer, completion

pytestmark = pytest.mark.anyio

KEY = "sk-test-secret-0123456789"


class Sleeps:
    """An injected sleep that records how long the client wanted to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def policy(sleeps: Sleeps, **kw: Any) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, random=lambda: 1.0, **kw)


def request(**kw: Any) -> ChatRequest:
    return ChatRequest(model="kimi-k2-6",
                       messages=[{"role": "user", "content": "我的订单 A1024 到哪了？"}], **kw)


def err(status: int, message: str, error_type: str | None = None,
        headers: dict[str, str] | None = None) -> Answer:
    body: dict[str, Any] = {"error": {"message": message}}
    if error_type:
        body["error"]["type"] = error_type
    return Answer(status, body, headers=headers or {})


async def test_complete_sends_exact_body_and_reads_chinese_reply() -> None:
    server = ScriptedServer([Answer(200, completion("您的订单已发货，预计明天送达。"),
                                    headers={"Msh-Request-Id": "req-1"})])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        history = [
            {"role": "system", "content": "你是客服。"},
            {"role": "user", "content": "查订单"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "get_order:0", "type": "function", "index": 0,
                 "function": {"name": "get_order", "arguments": '{"order_id":"A1024"}'}}]},
            {"role": "tool", "tool_call_id": "get_order:0", "content": "已发货"},
        ]
        result = await client.complete(ChatRequest(model="kimi-k2-6", messages=history,
                                                   max_tokens=512))
    assert result.message.content == "您的订单已发货，预计明天送达。"
    assert result.message.reasoning_content == "思考中"
    assert result.message.model == "kimi-k2-6"
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "你是客服。".encode() in sent.body, "CJK must go out unescaped"
    body = sent.json()
    assert set(body) == {"model", "messages", "max_tokens"}
    assistant = body["messages"][2]
    assert "content" not in assistant, "empty content beside tool calls is omitted"
    assert assistant["reasoning_content"] == " "
    assert assistant["tool_calls"] == [{"id": "get_order:0", "type": "function", "function": {
        "name": "get_order", "arguments": '{"order_id":"A1024"}'}}]


@pytest.mark.parametrize(
    ("usage", "in_choice", "cached"),
    [
        ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109,
          "cached_tokens": 64}, False, 64),
        ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109,
          "prompt_tokens_details": {"cached_tokens": 32}}, False, 32),
        ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109,
          "cached_tokens": 48}, True, 48),
        ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109}, False, 0),
    ],
)
async def test_usage_and_cached_tokens_in_each_position(
    usage: dict[str, Any], in_choice: bool, cached: int
) -> None:
    server = ScriptedServer([Answer(200, completion(usage=usage, usage_in_choice=in_choice))])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        result = await client.complete(request())
    assert result.usage is not None
    assert result.usage.prompt_tokens == 100
    assert result.usage.cached_tokens == cached


def stream_events(*, usage_where: str = "choice") -> list[dict[str, Any] | str]:
    """Kimi-shaped stream: reasoning, text, then two parallel tool calls in many fragments."""
    def chunk(delta: dict[str, Any], finish: str | None = None,
              usage: dict[str, Any] | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if usage is not None:
            choice["usage"] = usage
        return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                "model": "kimi-k2-6", "choices": [choice]}

    usage = {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70,
             "cached_tokens": 40}
    args0 = json.dumps({"order_id": "A1024", "备注": "加急"}, ensure_ascii=False)
    args1 = json.dumps({"query": "退货政策"}, ensure_ascii=False)
    events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"reasoning_content": part}) for part in ["用户", "想查", "订单"]]
    events += [chunk({"content": part}) for part in ["我来", "查一下。"]]
    events.append(chunk({"tool_calls": [{"index": 0, "id": "get_order:0", "type": "function",
                                         "function": {"name": "get_order", "arguments": ""}}]}))
    events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": args0[i:i + 3]}}]})
               for i in range(0, len(args0), 3)]
    events.append(chunk({"tool_calls": [{"index": 1, "id": "faq_search:1", "type": "function",
                                         "function": {"name": "faq_search", "arguments": ""}}]}))
    events += [chunk({"tool_calls": [{"index": 1, "function": {"arguments": args1[i:i + 2]}}]})
               for i in range(0, len(args1), 2)]
    if usage_where == "choice":
        events.append(chunk({}, "tool_calls", usage))
    else:
        events.append(chunk({}, "tool_calls"))
        events.append({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                       "model": "kimi-k2-6", "choices": [], "usage": usage})
    return events


@pytest.mark.parametrize("usage_where", ["choice", "trailing"])
async def test_stream_assembles_reasoning_text_and_parallel_tool_calls(usage_where: str) -> None:
    server = ScriptedServer([Answer(events=stream_events(usage_where=usage_where))])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        async with client.stream(request()) as stream:
            chunks = [chunk async for chunk in stream]
        result = stream.completion
    assert len(chunks) > 10
    assert server.requests[0].json()["stream"] is True
    message = result.message
    assert message.reasoning_content == "用户想查订单"
    assert message.content == "我来查一下。"
    assert [c.id for c in message.tool_calls or []] == ["get_order:0", "faq_search:1"]
    calls = message.tool_calls or []
    assert json.loads(calls[0].function.arguments) == {"order_id": "A1024", "备注": "加急"}
    assert json.loads(calls[1].function.arguments) == {"query": "退货政策"}
    assert result.finish_reason == "tool_calls"
    assert result.usage is not None and result.usage.cached_tokens == 40


@pytest.mark.parametrize(
    ("answer", "error_type"),
    [
        (err(400, "Your request exceeded model token limit: 131072", "invalid_request_error"),
         ContextLengthError),
        (err(400, "Input token length too long", "invalid_request_error"), ContextLengthError),
        (err(400, "The request was rejected because it was considered high risk",
             "content_filter"), ContentFilterError),
        (err(400, "Invalid request: temperature is not supported", "invalid_request_error"),
         BadRequestError),
        (err(422, "unprocessable"), BadRequestError),
        (err(401, "Invalid Authentication", "invalid_authentication_error"),
         AuthenticationError),
        (err(401, "Incorrect API key provided", "incorrect_api_key_error"), AuthenticationError),
        (err(402, "Payment required"), PaymentRequiredError),
        (err(429, "Your account is suspended, please recharge", "exceeded_current_quota_error"),
         QuotaExceededError),
        (err(429, "insufficient balance"), QuotaExceededError),
    ],
)
async def test_each_non_retryable_error_row_is_typed_and_tried_once(
    answer: Answer, error_type: type[GatewayError]
) -> None:
    answer.headers = {"Msh-Request-Id": "req-42", "X-Msh-Trace-Id": "trace-7"}
    sleeps = Sleeps()
    server = ScriptedServer([answer])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        with pytest.raises(error_type) as caught:
            await client.complete(request())
    assert len(server.requests) == 1, "never retried"
    assert sleeps.calls == []
    error = caught.value
    assert error.status == answer.status
    assert error.request_id == "req-42" and error.trace_id == "trace-7"
    assert KEY not in str(error) and KEY not in repr(error)


@pytest.mark.parametrize(
    ("answer", "error_type"),
    [
        (err(429, "The engine is currently overloaded", "engine_overloaded_error"),
         RateLimitError),
        (err(429, "rate limit reached", "rate_limit_reached_error"), RateLimitError),
        (err(500, "boom", "server_error"), ServerError),
        (err(502, "bad gateway"), ServerError),
        (err(503, "unexpected output", "unexpected_output"), ServerError),
    ],
)
async def test_busy_and_server_errors_retry_with_full_jitter_backoff(
    answer: Answer, error_type: type[GatewayError]
) -> None:
    sleeps = Sleeps()
    server = ScriptedServer([answer, answer, answer])
    retry = policy(sleeps, max_retries=2, base_delay=0.5)
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        with pytest.raises(error_type):
            await client.complete(request())
    assert len(server.requests) == 3, "first attempt + 2 retries"
    assert sleeps.calls == [0.5, 1.0], "full jitter with random()=1 gives the exponential cap"


async def test_retry_succeeds_after_transient_failure() -> None:
    sleeps = Sleeps()
    server = ScriptedServer([err(503, "busy"), Answer(200, completion("成功"))])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        result = await client.complete(request())
    assert result.message.content == "成功"
    assert len(sleeps.calls) == 1


async def test_retry_after_seconds_is_honoured() -> None:
    sleeps = Sleeps()
    busy = err(429, "overloaded", "engine_overloaded_error", headers={"Retry-After": "3"})
    server = ScriptedServer([busy, Answer(200, completion())])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        await client.complete(request())
    assert sleeps.calls == [3.0]


async def test_retry_after_http_date_is_honoured() -> None:
    sleeps = Sleeps()
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    busy = err(503, "down", "server_error", headers={"Retry-After": when})
    server = ScriptedServer([busy, Answer(200, completion())])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        await client.complete(request())
    assert len(sleeps.calls) == 1 and 3.0 <= sleeps.calls[0] <= 5.0


async def test_retry_after_over_the_cap_ends_retries() -> None:
    sleeps = Sleeps()
    busy = err(429, "overloaded", "engine_overloaded_error", headers={"Retry-After": "3600"})
    server = ScriptedServer([busy, Answer(200, completion())])
    retry = policy(sleeps, max_retry_after=30.0)
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.complete(request())
    assert caught.value.retry_after == 3600.0
    assert sleeps.calls == [] and len(server.requests) == 1


async def test_total_deadline_bounds_retries() -> None:
    sleeps = Sleeps()
    clock = iter([0.0, 0.0, 100.0, 100.0, 100.0])
    retry = RetryPolicy(max_retries=5, base_delay=1.0, deadline=10.0, sleep=sleeps,
                        random=lambda: 1.0, clock=lambda: next(clock))
    server = ScriptedServer([err(503, "x")] * 6)
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        with pytest.raises(ServerError):
            await client.complete(request())
    assert len(server.requests) == 2, "the deadline stops retries the policy would allow"


async def test_non_json_error_body_gives_clear_error() -> None:
    server = ScriptedServer([Answer(502, "<html>Bad Gateway 网关错误</html>")])
    retry = RetryPolicy(max_retries=0)
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        with pytest.raises(ServerError) as caught:
            await client.complete(request())
    assert "non-JSON body" in str(caught.value)
    assert "网关错误" in str(caught.value)


async def test_missing_key_is_reported_on_first_request_not_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BYTESPIKE_API_KEY", raising=False)
    client = GatewayClient("http://127.0.0.1:9/v1")
    async with client:
        with pytest.raises(MissingAPIKeyError, match="BYTESPIKE_API_KEY"):
            await client.complete(request())


async def test_env_configures_base_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ScriptedServer([Answer(200, completion())])
    async with server.serve() as url:
        monkeypatch.setenv("BYTESPIKE_BASE_URL", url)
        monkeypatch.setenv("BYTESPIKE_API_KEY", KEY)
        async with GatewayClient() as client:
            assert client.base_url == url
            await client.complete(request())
    assert server.requests[0].headers["authorization"].endswith("0123456789")


async def test_non_ascii_key_is_a_clear_configuration_error() -> None:
    from kimi_agent.errors import ConfigurationError

    async with GatewayClient("http://127.0.0.1:9/v1", "sk-密钥 ") as client:
        with pytest.raises(ConfigurationError, match="non-ASCII"):
            await client.complete(request())


def test_key_never_appears_in_repr() -> None:
    client = GatewayClient("http://127.0.0.1:9/v1", KEY)
    assert KEY not in repr(client) and "set" in repr(client)
    assert KEY not in str(vars(client))


async def test_stream_cut_before_done_is_an_error_and_retried_when_nothing_delivered() -> None:
    role_only = [{"id": "x", "model": "kimi-k2-6", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    sleeps = Sleeps()
    server = ScriptedServer([Answer(events=role_only, done=False),
                             Answer(events=stream_events())])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        async with client.stream(request()) as stream:
            _ = [c async for c in stream]
    assert len(server.requests) == 2 and len(sleeps.calls) == 1
    assert stream.completion.message.content == "我来查一下。"


async def test_stream_cut_after_content_surfaces_with_partial_output() -> None:
    events = stream_events()[:6]
    sleeps = Sleeps()
    server = ScriptedServer([Answer(events=events, done=False), Answer(events=stream_events())])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        stream = client.stream(request())
        with pytest.raises(IncompleteStreamError):
            async for _ in stream:
                pass
    assert len(server.requests) == 1, "never retried once content reached the caller"
    assert stream.started
    assert stream.partial.message.reasoning_content == "用户想查订单"
    with pytest.raises(RuntimeError):
        _ = stream.completion


async def test_connection_dropped_mid_stream_is_a_connection_error() -> None:
    server = ScriptedServer([Answer(events=stream_events(), drop_after=5)])
    retry = RetryPolicy(max_retries=0)
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        stream = client.stream(request())
        with pytest.raises((GatewayConnectionError, IncompleteStreamError)):
            async for _ in stream:
                pass


async def test_stream_error_status_is_retried_then_typed() -> None:
    sleeps = Sleeps()
    server = ScriptedServer([err(503, "busy", "server_error"), Answer(events=stream_events())])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        async with client.stream(request()) as stream:
            _ = [c async for c in stream]
    assert stream.completion.finish_reason == "tool_calls"
    assert len(sleeps.calls) == 1


async def test_connection_refused_is_a_connection_error() -> None:
    retry = RetryPolicy(max_retries=0)
    async with GatewayClient("http://127.0.0.1:9/v1", KEY, retry=retry) as client:
        with pytest.raises(GatewayConnectionError):
            await client.complete(request())


async def test_borrowed_http_client_is_left_open() -> None:
    import httpx

    server = ScriptedServer([Answer(200, completion()), Answer(200, completion())])
    async with server.serve() as url, httpx.AsyncClient() as http:
        async with GatewayClient(url, KEY, http_client=http) as client:
            await client.complete(request())
        assert not http.is_closed
        await GatewayClient(url, KEY, http_client=http).complete(request())


async def test_each_request_is_logged_with_ids_tokens_and_no_secret() -> None:
    import io

    from kimi_agent._logging import configure_logging, disable_logging

    buffer = io.StringIO()
    configure_logging("DEBUG", json=True, stream=buffer)
    sleeps = Sleeps()
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cached_tokens": 8}
    server = ScriptedServer([err(503, "busy", "server_error", {"Msh-Request-Id": "req-a"}),
                             Answer(200, completion(usage=usage),
                                    headers={"Msh-Request-Id": "req-b"})])
    try:
        async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as c:
            await c.complete(request())
    finally:
        disable_logging()
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    retry, call = events
    assert retry["event"] == "model_call_retry" and retry["status"] == 503
    assert retry["attempt"] == 1 and retry["request_id"] == "req-a"
    assert call["event"] == "model_call" and call["request_id"] == "req-b"
    assert call["cached_tokens"] == 8 and call["prompt_tokens"] == 10
    assert call["model"] == "kimi-k2-6" and call["latency_ms"] >= 0
    assert KEY not in buffer.getvalue()


async def test_max_tokens_is_clamped_to_the_cap_and_the_window() -> None:
    server = ScriptedServer([Answer(200, completion()), Answer(200, completion()),
                             Answer(200, completion())])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        await client.complete(request(max_tokens=100_000))
        await client.complete(request())
        await client.complete(ChatRequest(model="kimi-k2-5", messages=[
            {"role": "user", "content": "提取关键条款"}], max_tokens=9000))
    assert [r.json()["max_tokens"] for r in server.requests] == [16384, 16384, 8192]


async def test_a_prompt_that_cannot_fit_is_refused_before_sending() -> None:
    server = ScriptedServer([Answer(200, completion())])
    huge = "合同条款" * 50_000  # about 140K tokens by the CJK-aware estimate
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        with pytest.raises(ContextLengthError, match="kimi-k2-6"):
            await client.complete(ChatRequest(model="kimi-k2-6",
                                              messages=[{"role": "user", "content": huge}]))
    assert server.requests == [], "nothing was sent"


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
async def test_a_borrowed_client_of_either_library_streams(library: str) -> None:
    import importlib

    http_lib = importlib.import_module(library)
    server = ScriptedServer([Answer(events=stream_events()), err(429, "busy",
                                                                 "engine_overloaded_error")])
    retry = RetryPolicy(max_retries=0)
    async with server.serve() as url, http_lib.AsyncClient() as http:
        client = GatewayClient(url, KEY, http_client=http, retry=retry)
        async with client.stream(request()) as stream:
            _ = [c async for c in stream]
        assert stream.completion.message.content == "我来查一下。"
        with pytest.raises(RateLimitError):
            await client.complete(request())


async def test_own_client_is_httpx2() -> None:
    import httpx2

    async with GatewayClient("http://127.0.0.1:9/v1", KEY) as client:
        assert isinstance(client._http, httpx2.AsyncClient)
