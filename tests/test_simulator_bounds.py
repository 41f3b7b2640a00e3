"""What the simulator keeps and how it behaves over long runs: bounded records and cache, the
prompt-cache model, a client hanging up mid-stream."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx
import pytest

from kimi_agent.testing import GatewaySimulator, Latency, Reply
from kimi_agent.testing._tokens import count_message, count_tools

pytestmark = pytest.mark.anyio

SYSTEM = {"role": "system", "content": "你是一家网店的客服，回答要简短礼貌。"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "查询订单状态。",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]


def in_process(sim: GatewaySimulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app),
        base_url="http://sim/v1",
        headers={"x-api-key": sim.api_key},
    )


async def test_records_are_bounded_and_keep_the_newest() -> None:
    sim = GatewaySimulator(max_requests=50)
    async with in_process(sim) as http:
        for i in range(300):
            user = {"role": "user", "content": f"第 {i} 个问题"}
            response = await http.post(
                "/chat/completions", json={"model": "kimi-k2-6", "messages": [user]}
            )
            assert response.status_code == 200
    assert len(sim.requests) == 50 and sim.received == 300
    assert [r.index for r in sim.requests] == list(range(250, 300))
    assert sim.last_request.messages[0]["content"] == "第 299 个问题"


async def test_a_long_soak_keeps_every_store_bounded() -> None:
    sim = GatewaySimulator(max_requests=100)
    sim.cache.max_entries = 500
    sim.responder = lambda _: (_ for _ in ()).throw(RuntimeError("坏了"))  # every answer a 500
    async with in_process(sim) as http:
        for i in range(400):
            body = {"model": "kimi-k2-6", "messages": [SYSTEM, {"role": "user", "content": str(i)}]}
            assert (await http.post("/chat/completions", json=body)).status_code == 500
        sim.responder = None
        for i in range(400):
            body = {"model": "kimi-k2-6", "messages": [SYSTEM, {"role": "user", "content": str(i)}]}
            assert (await http.post("/chat/completions", json=body)).status_code == 200
    assert len(sim.requests) == 100 and len(sim.errors) == 100
    assert len(sim.cache) <= 500
    assert sim.in_flight == 0


async def test_cached_tokens_are_the_longest_shared_prefix() -> None:
    sim = GatewaySimulator(responder=lambda _: Reply(reasoning="好。", text="好的。"))
    first_user = {"role": "user", "content": "订单 A1024 到哪了？"}
    async with in_process(sim) as http:

        async def usage(messages: list[dict[str, Any]], tools: Any = TOOLS) -> dict[str, Any]:
            body = {"model": "kimi-k2-6", "messages": messages, "tools": tools}
            answer = (await http.post("/chat/completions", json=body)).json()
            assert isinstance(answer["usage"], dict)
            return answer["usage"]

        cold = await usage([SYSTEM, first_user])
        assert cold["cached_tokens"] == 0 and cold["prompt_tokens_details"]["cached_tokens"] == 0
        assistant = {"role": "assistant", "content": "好的。"}
        warm = await usage([SYSTEM, first_user, assistant, {"role": "user", "content": "谢谢"}])
        shared = count_tools(TOOLS) + count_message(SYSTEM) + count_message(first_user)
        assert warm["cached_tokens"] == shared
        assert warm["prompt_tokens_details"]["cached_tokens"] == shared
        assert warm["prompt_tokens"] > shared
        # changing the tools array changes the very first bytes: nothing is shared any more
        other_tools = [{**TOOLS[0], "function": {**TOOLS[0]["function"], "description": "查"}}]
        moved = await usage([SYSTEM, first_user], other_tools)
        assert moved["cached_tokens"] == 0
        # per model: the same prefix on the other model is cold
        body = {"model": "kimi-k2-5", "messages": [SYSTEM, first_user], "tools": TOOLS}
        other_model = (await http.post("/chat/completions", json=body)).json()["usage"]
        assert other_model["cached_tokens"] == 0


async def test_a_client_hanging_up_mid_stream_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "您的订单已经从杭州仓库发出，预计明天下午送达，请注意查收。" * 4
    sim = GatewaySimulator(
        responder=lambda _: Reply(reasoning="查一下。", text=text),
        latency=Latency(tokens_per_second=200),
    )
    caplog.set_level(logging.DEBUG)
    body = {"model": "kimi-k2-6", "messages": [SYSTEM, {"role": "user", "content": "到哪了"}]}
    async with sim.serve() as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"x-api-key": sim.api_key}) as http:
            async with http.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        json.loads(line.removeprefix("data: "))
                        break  # hang up after the first event
        with anyio.fail_after(10):
            while sim.in_flight:
                await anyio.sleep(0.01)
    assert not [record for record in caplog.records if record.exc_info]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_connections_count_what_a_client_opens() -> None:
    sim = GatewaySimulator()
    body = {"model": "kimi-k2-6", "messages": [{"role": "user", "content": "你好"}]}
    async with sim.serve() as base_url:
        headers = {"x-api-key": sim.api_key}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as reused:
            for _ in range(4):
                assert (await reused.post("/chat/completions", json=body)).status_code == 200
                async with reused.stream(
                    "POST", "/chat/completions", json={**body, "stream": True}
                ) as r:
                    await r.aread()  # read to the end: the connection goes back to the pool
        assert sim.connections == 1
        for _ in range(3):
            async with httpx.AsyncClient(base_url=base_url, headers=headers) as fresh:
                await fresh.post("/chat/completions", json=body)
    assert sim.connections == 4
