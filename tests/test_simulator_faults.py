"""Injected faults and latency, seen by raw httpx over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kimi_agent.errors import ConfigurationError
from kimi_agent.testing import DroppedConnection, GatewaySimulator, Latency, Reply

pytestmark = pytest.mark.anyio


def reply(_: Any) -> Reply:
    return Reply(
        reasoning="用户在问订单，先查一下。",
        text="您的订单 A1024 已发货，预计明天送达。",
        tool_calls=[("get_order", {"order_id": "A1024"})],
    )


@pytest.fixture
def sim() -> GatewaySimulator:
    return GatewaySimulator(responder=reply, seed=1234)


@pytest.fixture
async def client(sim: GatewaySimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        sim.serve() as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
        ) as http,
    ):
        yield http


def body(model: str = "kimi-k2-6", **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "订单 A1024 到哪了？"}],
        **fields,
    }


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def sse_data(text: str) -> list[str]:
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e]


async def test_503_for_the_next_three_requests_of_one_model(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    fault = sim.inject("kimi-k2-6", status=503, times=3)
    statuses = []
    for _ in range(3):
        response = await client.post("/chat/completions", json=body())
        statuses.append(response.status_code)
        assert error_of(response)["type"] == "server_error"
        assert response.headers["msh-request-id"]
        other = await client.post("/chat/completions", json=body("kimi-k2-5"))
        assert other.status_code == 200  # the other model is unaffected
    assert statuses == [503, 503, 503]
    assert (await client.post("/chat/completions", json=body())).status_code == 200
    assert fault.fired == 3 and not fault.active
    assert [r.fault for r in sim.requests] == ["server_error", None] * 3 + [None]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(sim: GatewaySimulator, client: httpx.AsyncClient, status: int):
    sim.inject("kimi-k2-6", status=status)
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == status
    assert error_of(response)["type"] == "server_error"


async def test_429_busy_with_retry_after(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject("kimi-k2-6", status=429, retry_after=2)
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    error = error_of(response)
    assert error["type"] == "rate_limit_reached_error"
    assert "try again after 2 seconds" in error["message"]


async def test_429_busy_without_retry_after(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject("kimi-k2-6", kind="busy")
    sim.inject("kimi-k2-6", status=429)
    overloaded = await client.post("/chat/completions", json=body())
    limited = await client.post("/chat/completions", json=body())
    assert (overloaded.status_code, limited.status_code) == (429, 429)
    assert "retry-after" not in overloaded.headers and "retry-after" not in limited.headers
    assert error_of(overloaded)["type"] == "engine_overloaded_error"
    assert error_of(limited)["type"] == "rate_limit_reached_error"


async def test_429_out_of_quota(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject("kimi-k2-6", kind="quota")
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 429
    error = error_of(response)
    assert error["type"] == "exceeded_current_quota_error"
    assert "quota" in error["message"] and "balance" in error["message"]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, "invalid_authentication_error"), (402, "payment_required_error")],
)
async def test_401_and_402_on_demand(
    sim: GatewaySimulator, client: httpx.AsyncClient, status: int, error_type: str
):
    sim.inject(None, status=status)  # any model
    response = await client.post("/chat/completions", json=body("kimi-k2-5"))
    assert response.status_code == status
    assert error_of(response)["type"] == error_type


async def test_custom_error_fault(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject(
        "kimi-k2-6",
        status=400,
        error_type="content_filter",
        message="The request was rejected because it was considered high risk",
    )
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 400
    assert error_of(response) == {
        "type": "content_filter",
        "message": "The request was rejected because it was considered high risk",
    }


async def test_always_until_cancelled(sim: GatewaySimulator, client: httpx.AsyncClient):
    fault = sim.inject("kimi-k2-6", status=500, always=True)
    for _ in range(5):
        assert (await client.post("/chat/completions", json=body())).status_code == 500
    fault.cancel()
    assert (await client.post("/chat/completions", json=body())).status_code == 200
    assert fault.fired == 5


async def test_rate_is_reproducible_with_a_seed():
    async def statuses(seed: int) -> list[int]:
        sim = GatewaySimulator(seed=seed)
        sim.inject("kimi-k2-6", status=503, rate=0.5)
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://sim/v1",
            headers={"Authorization": "Bearer sim-key"},
        ) as http:
            return [
                (await http.post("/chat/completions", json=body())).status_code for _ in range(40)
            ]

    first, second = await statuses(7), await statuses(7)
    assert first == second
    assert 200 in first and 503 in first


async def test_rate_extremes_and_rate_with_times(sim: GatewaySimulator, client: httpx.AsyncClient):
    never = sim.inject("kimi-k2-6", status=500, rate=0.0)
    capped = sim.inject("kimi-k2-6", status=503, rate=1.0, times=2)
    statuses = [(await client.post("/chat/completions", json=body())).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert never.fired == 0 and capped.fired == 2


async def test_faults_strike_only_valid_requests(sim: GatewaySimulator, client: httpx.AsyncClient):
    fault = sim.inject("kimi-k2-6", status=503)
    bad = await client.post("/chat/completions", json=body(temperature=0.2))
    assert bad.status_code == 400  # a client bug is never hidden behind a fault
    assert fault.fired == 0
    assert (await client.post("/chat/completions", json=body())).status_code == 503


async def test_slow_reply_answers_late(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject("kimi-k2-6", kind="slow", delay=0.01)
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 200
    assert sim.last_request.fault == "slow"


async def test_slow_reply_outlasts_a_client_timeout(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    sim.inject("kimi-k2-6", kind="slow", delay=30)
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/chat/completions", json=body(), timeout=0.2)
    # leaving the serve() block must still be clean with that answer in flight


async def test_drop_mid_stream_is_a_transport_error(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    sim.inject("kimi-k2-6", kind="drop_mid_stream", after_chunks=3)
    received: list[str] = []
    with pytest.raises(httpx.TransportError):
        async with client.stream("POST", "/chat/completions", json=body(stream=True)) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    received.append(line)
    assert len(received) == 3
    first = json.loads(received[0].removeprefix("data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(line != "data: [DONE]" for line in received)
    assert sim.last_request.fault == "drop_mid_stream"
    # the server survives: the next request is answered
    assert (await client.post("/chat/completions", json=body())).status_code == 200


async def test_drop_of_a_non_streamed_reply(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject("kimi-k2-6", kind="drop_mid_stream")
    with pytest.raises(httpx.TransportError):
        await client.post("/chat/completions", json=body())


async def test_stream_cut_before_done(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject("kimi-k2-6", kind="cut_before_done")
    response = await client.post("/chat/completions", json=body(stream=True))
    assert response.status_code == 200  # a clean end of the body...
    events = sse_data(response.text)
    assert "[DONE]" not in events  # ...without [DONE]
    last = json.loads(events[-1])
    assert last["choices"][0]["finish_reason"] == "tool_calls"

    sim.inject("kimi-k2-6", kind="cut_before_done", after_chunks=1)
    short = await client.post("/chat/completions", json=body(stream=True))
    assert len(sse_data(short.text)) == 1


async def test_cut_of_a_non_streamed_reply_is_truncated_json(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    sim.inject("kimi-k2-6", kind="cut_before_done")
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


async def test_drop_in_process_raises_a_transport_error(sim: GatewaySimulator):
    sim.inject("kimi-k2-6", kind="drop_mid_stream")
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim/v1", headers={"Authorization": "Bearer sim-key"}
    ) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post("/chat/completions", json=body(stream=True))
    assert isinstance(caught.value, DroppedConnection)


async def test_latency_model_keeps_answers_intact(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.latency = Latency(first_token=0.001, tokens_per_second=100_000)
    plain = await client.post("/chat/completions", json=body())
    streamed = await client.post("/chat/completions", json=body(stream=True))
    assert (
        plain.json()["choices"][0]["message"]["content"] == "您的订单 A1024 已发货，预计明天送达。"
    )
    assert sse_data(streamed.text)[-1] == "[DONE]"


def test_latency_arithmetic():
    assert Latency().for_tokens(1000) == 0.0
    assert Latency(tokens_per_second=50).for_tokens(100) == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"model": "kimi-k9"},
        {"kind": "slow", "status": 503},
        {"kind": "teleport"},
        {"status": 200},
        {"status": 503, "rate": 1.5},
        {"status": 503, "times": 0},
        {"status": 503, "always": True, "times": 2},
    ],
)
def test_inject_refuses_nonsense(kwargs: dict[str, Any]):
    sim = GatewaySimulator()
    model = kwargs.pop("model", "kimi-k2-6")
    with pytest.raises(ConfigurationError):
        sim.inject(model, **kwargs)


def test_reset_forgets_faults_and_requests(sim: GatewaySimulator):
    sim.inject("kimi-k2-6", status=503, always=True)
    sim.reset()
    assert sim.faults.faults == [] and len(sim.requests) == 0
