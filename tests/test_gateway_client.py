"""GatewayClient's edges on a raw loopback server: per-phase time-outs, the limiters, the
call's ids and spend / quota headers, the token kept out of frame locals, lone surrogates,
2xx never retried, every error class exported."""

from __future__ import annotations

import inspect
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kimi_agent
from kimi_agent import Agent, ConcurrencyLimiter, FairLimiter, GatewayClient, RetryPolicy
from kimi_agent import errors as errors_module
from kimi_agent.errors import (
    ConcurrencyLimitError,
    ConfigurationError,
    GatewayError,
    GatewayTimeoutError,
    ModelFailedError,
    ResponseFormatError,
    ServerError,
)
from kimi_agent.wire import ChatRequest
from tests.gatewaykit import Sleeps, answer_ok, gateway_error, policy, run_agent
from tests.scripted_http import Answer, ScriptedServer, completion

pytestmark = pytest.mark.anyio

KEY = "sk-byts-secret-0123456789"
QUOTA_HEADERS = {"X-RateLimit-Limit": "50.00", "X-RateLimit-Remaining": "4.18",
                 "X-RateLimit-Reset": "1716705600", "X-Quota-Remaining-Credits": "4180000",
                 "X-Org-Quota-Remaining-Credits": "90000000", "Msh-Request-Id": "req-7",
                 "X-Msh-Trace-Id": "trace-7", "X-Gateway-Request-Id": "gw-7"}


async def wait_until(condition: Any) -> None:
    """Yield to the loop until `condition()` holds (bounded, so a bug fails, not hangs)."""
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.001)


def request(text: str = "我的订单到哪了？") -> ChatRequest:
    return ChatRequest(model="kimi-k2-6", messages=[{"role": "user", "content": text}])


# --------------------------------------------------------------------------- time-outs


async def test_a_silent_gateway_is_a_timeout_naming_the_phase_not_a_hang() -> None:
    server = ScriptedServer([Answer(silent=True)])
    async with server.serve() as url, GatewayClient(url, KEY, reply_timeout=0.3,
                                                   retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(GatewayTimeoutError) as caught:
            await client.complete(request())
    assert caught.value.phase == "headers"
    assert "0.3 s" in str(caught.value) and caught.value.model == "kimi-k2-6"


async def test_silent_stream_headers_are_a_headers_timeout_through_the_agent() -> None:
    server = ScriptedServer([Answer(silent=True), Answer(silent=True)])
    async with server.serve() as url, GatewayClient(url, KEY, headers_timeout=0.3,
                                                   retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(ModelFailedError) as caught:
            await run_agent(Agent(client=client), "你好", streamed=True)
    cause = caught.value.cause
    assert isinstance(cause, GatewayTimeoutError) and cause.phase == "headers"
    assert [r.json()["model"] for r in server.requests] == ["kimi-k2-6", "kimi-k2-5"], (
        "a time-out falls over")


def test_timeouts_are_validated_and_documented() -> None:
    with pytest.raises(ConfigurationError, match="idle_timeout"):
        GatewayClient("http://127.0.0.1:9/v1", KEY, idle_timeout=0)
    doc = inspect.getdoc(GatewayClient) or ""
    for phrase in ("connect_timeout", "headers_timeout", "idle_timeout", "reply_timeout"):
        assert phrase in doc
    client = GatewayClient("http://127.0.0.1:9/v1", KEY)
    assert (client.timeouts.connect, client.timeouts.headers, client.timeouts.idle,
            client.timeouts.reply) == (10.0, 60.0, 60.0, 300.0)


# --------------------------------------------------------------------------- limiters


async def test_concurrency_queues_instead_of_exceeding_the_cap() -> None:
    server = ScriptedServer([Answer(200, completion(f"回答{i}"), delay=0.05)
                             for i in range(12)])
    async with server.serve() as url, GatewayClient(url, KEY, concurrency=3) as client:
        results: list[str] = []

        async def one(i: int) -> None:
            reply = await client.complete(request(f"问题{i}"))
            results.append(reply.message.text)

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)
        assert isinstance(client.limiter, FairLimiter) and client.limiter.in_flight == 0
    assert len(results) == 12
    assert server.max_in_flight == 3, "never more than the account's cap in flight"


async def test_the_pool_limiter_keeps_waiters_out_of_the_pool() -> None:
    server = ScriptedServer([Answer(200, completion("好"), delay=0.05) for _ in range(10)])
    async with server.serve() as url, GatewayClient(url, KEY, max_connections=2) as client:
        waiting: list[int] = []

        async def one() -> None:
            await client.complete(request())

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
            await wait_until(lambda: client.pool_limiter.waiting > 0)
            waiting.append(client.pool_limiter.waiting)
    assert server.max_in_flight <= 2
    assert waiting[0] >= 1, "the others wait at the limiter, not inside the pool"


async def test_fair_limiter_serves_waiters_in_arrival_order() -> None:
    limiter = FairLimiter(1)
    order: list[int] = []
    gate = anyio.Event()

    async def holder() -> None:
        async with limiter.slot():
            await gate.wait()

    async def waiter(i: int) -> None:
        async with limiter.slot():
            order.append(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await wait_until(lambda: limiter.in_flight == 1)
        for i in range(5):
            tg.start_soon(waiter, i)
            await wait_until(lambda i=i: limiter.waiting == i + 1)
        assert limiter.waiting == 5
        gate.set()
    assert order == [0, 1, 2, 3, 4]


class CountingLimiter:
    """A user's own limiter (a shared one would talk to Redis here)."""

    def __init__(self) -> None:
        self.entered = 0
        self.active = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.entered += 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


async def test_any_object_with_slot_is_a_limiter_and_holds_the_whole_stream() -> None:
    limiter = CountingLimiter()
    assert isinstance(limiter, ConcurrencyLimiter)
    server = ScriptedServer([answer_ok("流式回答", streamed=True),
                             gateway_error(503, "busy"), answer_ok("好", streamed=False)])
    async with server.serve() as url, GatewayClient(url, KEY, concurrency=limiter,
                                                   retry=policy(Sleeps())) as client:
        async with client.stream(request()) as stream:
            async for _ in stream:
                assert limiter.active == 1, "held while the body is read"
        await client.complete(request())
    assert limiter.entered == 3 and limiter.active == 0, "one slot per attempt, all freed"


@pytest.mark.parametrize("bad", [0, -1, "5", 2.5, True])
def test_a_bad_concurrency_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"concurrency|positive"):
        GatewayClient("http://127.0.0.1:9/v1", KEY, concurrency=bad)


# --------------------------------------------------------------------------- call info


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_each_reply_carries_ids_spend_and_quota(streamed: bool) -> None:
    server = ScriptedServer([answer_ok("好的", streamed=streamed, headers=QUOTA_HEADERS)])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        if streamed:
            async with client.stream(request()) as stream:
                _ = [c async for c in stream]
            reply = stream.completion
        else:
            reply = await client.complete(request())
    info = reply.call_info
    assert info is not None and info.stream is streamed and info.status == 200
    assert info.request_id == "req-7" and info.trace_id == "trace-7"
    assert info.request_ids["x-gateway-request-id"] == "gw-7"
    assert info.request_ids["id"] in ("chatcmpl-1", "chatcmpl-s1")
    assert info.rate_limit_remaining == 4.18 and info.rate_limit_limit == 50.0
    assert info.rate_limit_reset == datetime.fromtimestamp(1716705600, UTC)
    assert info.quota_remaining_credits == 4_180_000
    assert info.org_quota_remaining_credits == 90_000_000
    assert "call_info" not in reply.model_dump() and "_call_info" not in reply.model_dump()


async def test_errors_carry_the_ids_and_the_call_headers() -> None:
    server = ScriptedServer([gateway_error(400, "bad", code="invalid_param",
                                           headers=QUOTA_HEADERS)])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        with pytest.raises(GatewayError) as caught:
            await client.complete(request())
    error = caught.value
    assert error.code == "invalid_param"
    assert error.request_id == "req-7" and error.request_ids["x-gateway-request-id"] == "gw-7"
    assert error.call is not None and error.call.rate_limit_remaining == 4.18
    assert "code=invalid_param" in str(error) and "request_id=req-7" in str(error)


async def test_model_call_log_line_is_info_with_ids_and_remaining_spend() -> None:
    from kimi_agent._logging import configure_logging, disable_logging

    buffer = io.StringIO()
    configure_logging("INFO", json=True, stream=buffer)
    server = ScriptedServer([gateway_error(503, "busy", error_type="server_error",
                                           headers={"Msh-Request-Id": "req-a"}),
                             answer_ok("好", streamed=False, headers=QUOTA_HEADERS)])
    try:
        async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as c:
            await c.complete(request())
    finally:
        disable_logging()
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    retry, call = events
    assert retry["event"] == "model_call_retry" and retry["request_id"] == "req-a"
    assert call["event"] == "model_call" and call["level"] == "info"
    assert call["request_id"] == "req-7" and call["trace_id"] == "trace-7"
    assert call["rate_limit_remaining"] == 4.18 and call["attempts"] == 2
    assert KEY not in buffer.getvalue()


# --------------------------------------------------------------------------- 2xx, secrets


@pytest.mark.parametrize("body", ["<html>proxy page</html>", '{"object": "chat.completion"}'])
async def test_a_non_streamed_2xx_is_never_sent_again(body: str) -> None:
    server = ScriptedServer([Answer(200, body), answer_ok("不该到这里", streamed=False)])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as client:
        with pytest.raises(ModelFailedError) as caught:
            await Agent(client=client).run("你好")
    assert isinstance(caught.value.cause, ResponseFormatError)
    assert len(server.requests) == 1, "no retry and no fallback: the gateway charged it"


def _locals_of(error: BaseException) -> list[tuple[str, str, Any]]:
    found = []
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__", "").startswith("kimi_agent"):
            found += [(frame.f_code.co_name, name, value)
                      for name, value in frame.f_locals.items()]
        tb = tb.tb_next
    return found


def _shows(value: Any, secret: str, depth: int = 0) -> bool:
    if depth > 3:
        return False
    if secret in repr(value):
        return True
    if isinstance(value, dict):
        return any(_shows(v, secret, depth + 1) for v in value.values())
    if isinstance(value, list | tuple | set):
        return any(_shows(v, secret, depth + 1) for v in value)
    return False


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_the_token_is_in_no_frame_local_an_error_tracker_records(streamed: bool) -> None:
    server = ScriptedServer([gateway_error(500, "boom", error_type="server_error")])
    async with server.serve() as url, GatewayClient(url, KEY,
                                                   retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(ServerError) as caught:
            if streamed:
                async with client.stream(request()) as stream:
                    async for _ in stream:
                        pass
            else:
                await client.complete(request())
    frames = _locals_of(caught.value)
    assert {name for name, _, _ in frames} & {"post", "complete_body", "open_stream"}
    leaks = [(fn, name) for fn, name, value in frames if _shows(value, KEY)]
    assert leaks == []
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_lone_surrogates_are_replaced_at_the_boundary() -> None:
    server = ScriptedServer([answer_ok("好的", streamed=False), answer_ok("好的", streamed=False)])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        await client.complete({"model": "kimi-k2-6", "messages": [
            {"role": "user", "content": "订单\ud83d号"}]})
        result = await Agent(client=client).run("你好\udc00")
    assert result.output == "好的"
    first = server.requests[0].json()["messages"][0]["content"]
    assert first == "订单\ufffd号"
    assert "\ufffd" in server.requests[1].json()["messages"][-1]["content"]


# --------------------------------------------------------------------------- exports


def test_every_error_class_is_exported_from_kimi_agent() -> None:
    classes = {name for name, value in vars(errors_module).items()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == errors_module.__name__}
    assert set(errors_module.__all__) == classes
    assert classes <= set(kimi_agent.__all__)
    for name in classes:
        assert getattr(kimi_agent, name) is getattr(errors_module, name)
    for name in ("ConcurrencyLimiter", "FairLimiter", "CallInfo"):
        assert name in kimi_agent.__all__ and getattr(kimi_agent, name) is not None


def test_new_errors_keep_old_except_clauses_working() -> None:
    from kimi_agent import errors as e

    assert issubclass(e.SpendCapError, e.QuotaExceededError)
    assert issubclass(e.ConcurrencyLimitError, e.RateLimitError)
    assert issubclass(e.InsufficientBalanceError, e.PaymentRequiredError)
    assert issubclass(e.KeyQuotaExceededError, e.PaymentRequiredError)
    assert issubclass(e.PermissionDeniedError, e.AuthenticationError)
    assert issubclass(e.ModelNotAvailableError, e.NotFoundError)
    assert issubclass(e.ModelNotAvailableError, e.BadRequestError)
    assert not ConcurrencyLimitError.fallback_ok and e.ModelNotAvailableError.fallback_ok


def test_public_gateway_calls_document_what_they_raise() -> None:
    for function in (GatewayClient.complete, GatewayClient.complete_body,
                     GatewayClient.stream, GatewayClient.encode, GatewayClient,
                     FairLimiter):
        assert "Raises:" in (inspect.getdoc(function) or ""), function


@given(st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
       st.one_of(st.binary(max_size=200), st.text(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(st.sampled_from(
                                  ["error", "message", "type", "code", "metadata", "raw",
                                   "detail", "id", "status"]), inner, max_size=4),
                              max_leaves=12)))
def test_any_error_body_gives_a_typed_error_and_never_raises(status: int | None,
                                                             body: Any) -> None:
    from kimi_agent.gateway._errors import error_from_response

    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    error = error_from_response(status, {"x-ratelimit-reset": "x"}, raw, model="kimi-k2-6")
    assert isinstance(error, GatewayError) and error.message
    assert str(error)
