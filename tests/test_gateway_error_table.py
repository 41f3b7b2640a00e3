"""The gateway's documented error table (docs/wire/gateway.md), row by row, through the `Agent`,
streamed and not, on a raw scripted HTTP server on loopback.

Each row gives the answer of kimi-k2-6, the typed error it must become, and the requests the
client must make: how many times k2-6 is tried (retries) and whether kimi-k2-5 is tried after
it (fallback). Rows that fall over end with k2-5's answer; rows that do not end with a
`ModelFailedError` whose `cause` is the typed error, carrying the call's request id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kimi_agent import Agent, FairLimiter, GatewayClient
from kimi_agent.errors import (
    AuthenticationError,
    BadRequestError,
    ConcurrencyLimitError,
    ContentFilterError,
    ContextLengthError,
    GatewayError,
    InsufficientBalanceError,
    KeyQuotaExceededError,
    ModelFailedError,
    ModelNotAvailableError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    SpendCapError,
)
from tests.gatewaykit import Sleeps, answer_ok, gateway_error, policy, run_agent
from tests.scripted_http import Answer, ScriptedServer

pytestmark = pytest.mark.anyio

KEY = "sk-byts-test-0123456789"
IDS = {"Msh-Request-Id": "req-表-1", "X-Msh-Trace-Id": "trace-9"}


def _spend_cap_message(hours: float) -> tuple[str, dict[str, str]]:
    reset = (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)
    text = (f"rate_limit_5h exceeded: 50.00 / 50.00 used; resets at "
            f"{reset:%Y-%m-%d %H:%M:%S} UTC")
    return text, {"X-RateLimit-Limit": "50.00", "X-RateLimit-Remaining": "0.00",
                  "X-RateLimit-Reset": str(int(reset.timestamp()))}


@dataclass
class Row:
    name: str
    answer: Answer
    error: type[GatewayError]
    k2_6_attempts: int
    falls_over: bool


def row(name: str, status: int, message: str, error: type[GatewayError], *,
        code: str | None = None, error_type: str | None = None, attempts: int = 1,
        falls_over: bool = False, headers: dict[str, str] | None = None) -> Row:
    answer = gateway_error(status, message, code=code, error_type=error_type,
                           headers={**IDS, **(headers or {})})
    return Row(name, answer, error, attempts, falls_over)


_cap_text, _cap_headers = _spend_cap_message(hours=3)

ROWS = [
    # the gateway's own table
    row("400 invalid_param", 400, "messages: field required", BadRequestError,
        code="invalid_param", error_type="invalid_request_error"),
    row("400 model_not_found", 400, "model kimi-k2-6 not found", ModelNotAvailableError,
        code="model_not_found", error_type="invalid_request_error", falls_over=True),
    row("400 unsupported_model", 400, "unsupported model", ModelNotAvailableError,
        code="unsupported_model", falls_over=True),
    row("400 context_length_exceeded", 400, "prompt + max_tokens exceed the context window",
        ContextLengthError, code="context_length_exceeded", error_type="invalid_request_error",
        falls_over=True),
    row("401 invalid_api_key", 401, "invalid api key", AuthenticationError,
        code="invalid_api_key", error_type="authentication_error"),
    row("402 insufficient_balance", 402, "organisation wallet is empty",
        InsufficientBalanceError, code="insufficient_balance"),
    row("402 quota_exceeded", 402, "key quota used up", KeyQuotaExceededError,
        code="quota_exceeded"),
    row("403 permission_denied", 403, "ip not in whitelist", PermissionDeniedError,
        code="permission_denied", error_type="permission_error"),
    row("403 model_not_in_group", 403, "model isn't reachable from this key's group",
        ModelNotAvailableError, code="model_not_in_group", falls_over=True),
    row("400 model_not_allowed", 400, "model not allowed for this key",
        ModelNotAvailableError, code="model_not_allowed", falls_over=True),
    row("404 not_found", 404, "no such route", NotFoundError, code="not_found"),
    row("413 too large", 413, "request body too large", BadRequestError,
        error_type="request_too_large"),
    row("429 spend cap", 429, _cap_text, SpendCapError, error_type="rate_limit_error",
        headers=_cap_headers),
    row("500", 500, "gateway internal error", ServerError, error_type="api_error",
        attempts=4, falls_over=True),
    row("502", 502, "upstream timeout", ServerError, attempts=4, falls_over=True),
    row("503", 503, "no capacity for the model", ServerError, error_type="overloaded_error",
        attempts=4, falls_over=True),
    row("504", 504, "upstream timeout", ServerError, attempts=4, falls_over=True),
    # Moonshot's table, passed through
    row("moonshot token limit", 400, "Invalid request: Your request exceeded model token "
        "limit: 131072 (requested: 140000)", ContextLengthError,
        error_type="invalid_request_error", falls_over=True),
    row("moonshot content filter", 400, "The request was rejected because it was "
        "considered high risk", ContentFilterError, error_type="content_filter"),
    row("moonshot bad key", 401, "Invalid Authentication", AuthenticationError,
        error_type="invalid_authentication_error"),
    row("moonshot overloaded", 429, "The engine is currently overloaded, please try again "
        "later", RateLimitError, error_type="engine_overloaded_error", attempts=4,
        falls_over=True),
    row("moonshot quota", 429, "Your account is suspended, please recharge",
        QuotaExceededError, error_type="exceeded_current_quota_error"),
    row("moonshot retired model", 404, "Not found the model kimi-k2-6 or Permission denied",
        ModelNotAvailableError, error_type="resource_not_found_error", falls_over=True),
    row("moonshot server error", 500, "server error", ServerError, error_type="server_error",
        attempts=4, falls_over=True),
    row("plain 402", 402, "Payment required", PaymentRequiredError),
]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("case", ROWS, ids=[r.name for r in ROWS])
async def test_gateway_error_table_through_the_agent(case: Row, streamed: bool) -> None:
    answers = [case.answer] * case.k2_6_attempts
    if case.falls_over:
        answers.append(answer_ok("k2-5 的回答：订单已发货", streamed=streamed, model="kimi-k2-5"))
    server = ScriptedServer(answers)
    sleeps = Sleeps()
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        agent = Agent(client=client)
        if case.falls_over:
            result, seen = await run_agent(agent, "我的订单 A1024 到哪了？", streamed=streamed)
        else:
            with pytest.raises(ModelFailedError) as caught:
                await run_agent(agent, "我的订单 A1024 到哪了？", streamed=streamed)
    models = [r.json()["model"] for r in server.requests]
    expected = ["kimi-k2-6"] * case.k2_6_attempts + (["kimi-k2-5"] if case.falls_over else [])
    assert models == expected, "retries and fallback exactly as the table says"
    assert all(r.json().get("stream", False) is streamed for r in server.requests)
    if case.k2_6_attempts > 1:
        assert sleeps.calls == [1.0, 2.0, 4.0], "exponential from 1 s, at most 4 attempts"
    else:
        assert sleeps.calls == []
    if case.falls_over:
        assert result.output == "k2-5 的回答：订单已发货"
        assert seen == (result.output if streamed else "")
        assert result.steps[0].model == "kimi-k2-5"
        assert case.error.__name__ in (result.steps[0].fallback_reason or "")
        return
    cause = caught.value.cause
    assert type(cause) is case.error
    assert cause.status == case.answer.status
    assert cause.request_id == "req-表-1" and cause.trace_id == "trace-9"
    assert KEY not in str(caught.value) and KEY not in repr(cause)
    assert caught.value.messages[0].content == "我的订单 A1024 到哪了？"  # type: ignore[union-attr]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_concurrency_cap_is_retried_shortly_on_the_same_model(streamed: bool) -> None:
    busy = gateway_error(429, "too many requests in flight", code="concurrency_limit",
                         error_type="rate_limit_error", headers=IDS)
    server = ScriptedServer([busy, busy, answer_ok("好的", streamed=streamed)])
    sleeps = Sleeps()
    values = iter([0.0, 0.5, 1.0])
    retry = policy(sleeps)
    retry = type(retry)(sleep=sleeps, random=lambda: next(values))
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        result, _ = await run_agent(Agent(client=client), "你好", streamed=streamed)
    assert result.output == "好的"
    assert [r.json()["model"] for r in server.requests] == ["kimi-k2-6"] * 3, "no fallback"
    assert sleeps.calls == [1.0, 2.0], "jittered within 1-3 s"


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_concurrency_cap_that_persists_is_raised_without_fallback(streamed: bool) -> None:
    busy = gateway_error(429, "too many requests in flight", code="concurrency_limit",
                         error_type="rate_limit_error")
    server = ScriptedServer([busy] * 20)
    sleeps = Sleeps()
    async with server.serve() as url, GatewayClient(
            url, KEY, concurrency=2, retry=policy(sleeps, max_concurrency_retries=3)) as client:
        with pytest.raises(ModelFailedError) as caught:
            await run_agent(Agent(client=client), "你好", streamed=streamed)
        assert isinstance(client.limiter, FairLimiter)
        assert client.limiter.limit == 2 and client.limiter.in_flight == 0, (
            "a 429 that still happens shrinks nothing")
        assert client.pool_limiter.limit == 200
    assert isinstance(caught.value.cause, ConcurrencyLimitError)
    assert isinstance(caught.value.cause, RateLimitError), "old except clauses still match"
    assert {r.json()["model"] for r in server.requests} == {"kimi-k2-6"}
    assert len(server.requests) == 4 and all(1.0 <= s <= 3.0 for s in sleeps.calls)


async def test_spend_cap_is_raised_at_once_with_its_reset_time() -> None:
    text, headers = _spend_cap_message(hours=3)
    server = ScriptedServer([gateway_error(429, text, error_type="rate_limit_error",
                                           headers=headers)])
    sleeps = Sleeps()
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        with pytest.raises(ModelFailedError) as caught:
            await Agent(client=client).run("你好")
    cause = caught.value.cause
    assert isinstance(cause, SpendCapError) and isinstance(cause, QuotaExceededError)
    assert cause.reset_at is not None and cause.reset_at.tzinfo is not None
    assert cause.reset_at.timestamp() == float(headers["X-RateLimit-Reset"])
    assert sleeps.calls == [] and len(server.requests) == 1


async def test_spend_cap_reset_is_read_from_the_message_without_the_header() -> None:
    server = ScriptedServer([gateway_error(
        429, "rate_limit_1d exceeded: 20.00 / 20.00 used; resets at 2031-05-25 14:00:00 UTC",
        error_type="rate_limit_error")])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        with pytest.raises(SpendCapError) as caught:
            await client.complete({"model": "kimi-k2-6",
                                   "messages": [{"role": "user", "content": "你好"}]})
    assert caught.value.reset_at == datetime(2031, 5, 25, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_spend_cap_resetting_within_the_deadline_is_waited_for(streamed: bool) -> None:
    now = 1_900_000_000.0
    reset = int(now + 5)
    capped = gateway_error(429, "rate_limit_5h exceeded: 5.00 / 5.00 used",
                           error_type="rate_limit_error",
                           headers={"X-RateLimit-Reset": str(reset)})
    server = ScriptedServer([capped, answer_ok("好的", streamed=streamed)])
    sleeps = Sleeps()
    retry = policy(sleeps, wall_clock=lambda: now)
    async with server.serve() as url, GatewayClient(url, KEY, retry=retry) as client:
        result, _ = await run_agent(Agent(client=client), "你好", streamed=streamed)
    assert result.output == "好的"
    assert sleeps.calls == [6.0], "until X-RateLimit-Reset, plus a second"
    assert [r.json()["model"] for r in server.requests] == ["kimi-k2-6"] * 2


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_model_unavailable_on_both_names_both(streamed: bool) -> None:
    gone = gateway_error(400, "model not found", code="model_not_found",
                         error_type="invalid_request_error", headers=IDS)
    server = ScriptedServer([gone, gone])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        with pytest.raises(ModelFailedError) as caught:
            await run_agent(Agent(client=client), "你好", streamed=streamed)
    cause = caught.value.cause
    assert isinstance(cause, ModelNotAvailableError)
    assert cause.models == ("kimi-k2-6", "kimi-k2-5")
    assert "kimi-k2-6" in str(cause) and "kimi-k2-5" in str(cause)
    assert [r.json()["model"] for r in server.requests] == ["kimi-k2-6", "kimi-k2-5"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps({"error": {"message": "Your request exceeded model token limit: 262144",
                               "type": "invalid_request_error"}}), ContextLengthError),
        ({"error": {"message": "x", "code": "concurrency_limit"}}, ConcurrencyLimitError),
        (json.dumps({"error": {"message": "Invalid Authentication",
                               "type": "invalid_authentication_error"}}), AuthenticationError),
    ],
)
async def test_openrouter_wrapped_errors_are_unwrapped(raw: Any,
                                                       expected: type[GatewayError]) -> None:
    body = {"error": {"message": "Provider returned error", "code": 400,
                      "metadata": {"raw": raw, "provider_name": "Moonshot"}}}
    server = ScriptedServer([Answer(400, body)])
    async with server.serve() as url, GatewayClient(
            url, KEY, retry=policy(Sleeps(), max_retries=0, max_concurrency_retries=0)
    ) as client:
        with pytest.raises(expected) as caught:
            await client.complete({"model": "kimi-k2-6",
                                   "messages": [{"role": "user", "content": "你好"}]})
    assert "Provider returned error" not in caught.value.message
