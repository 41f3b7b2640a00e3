"""Fallback from kimi-k2-6 to kimi-k2-5 by the rules of docs/wire/gateway.md ("What falls over"),
on the simulator."""

from __future__ import annotations

import pytest

from kimi_agent import Agent, tool
from kimi_agent.agent._events import FallbackActivated, TextDelta
from kimi_agent.errors import (
    AuthenticationError,
    BadRequestError,
    ModelFailedError,
    PaymentRequiredError,
    QuotaExceededError,
)
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio


@tool
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号。
    """
    return {"order_id": order_id, "status": "已发货"}


def responder(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text=f"{request.model} 回答：订单已发货")
    return Reply(reasoning="查询订单", tool_calls=[("get_order", {"order_id": "A1024"})])


async def test_k2_6_failing_with_503_falls_back_to_k2_5_and_the_answer_arrives() -> None:
    sim = GatewaySimulator(responder=responder)
    sim.inject("kimi-k2-6", status=503, always=True)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_order], client=client)
        events = []
        async with agent.stream("我的订单 A1024 到哪了？") as run:
            async for event in run:
                events.append(event)
    result = run.result
    assert result.output == "kimi-k2-5 回答：订单已发货"
    assert [s.model for s in result.steps] == ["kimi-k2-5", "kimi-k2-5"]
    assert result.steps[0].fallback_reason == "ServerError (503)"
    assert result.steps[1].fallback_reason == "primary_cooling_down", "cool-down skips k2-6"
    fallbacks = [e for e in events if isinstance(e, FallbackActivated)]
    assert fallbacks[0].from_model == "kimi-k2-6" and fallbacks[0].to_model == "kimi-k2-5"
    k2_6 = [r for r in sim.requests if r.model == "kimi-k2-6"]
    assert len(k2_6) == 3, "k2-6 was retried (2 retries) before falling over, then cooled down"
    k2_5 = [r for r in sim.requests if r.model == "kimi-k2-5"]
    assert all(r.body["max_tokens"] <= 8192 for r in k2_5), "k2-5's own output cap"


async def test_primary_is_tried_again_after_the_cool_down() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text=f"来自 {r.model}"))
    sim.inject("kimi-k2-6", status=502, times=3)
    async with sim_client(sim) as client:
        agent = Agent(client=client, fallback_cooldown=0.0)
        first = await agent.run("你好")
        second = await agent.run("再问一次")
    assert first.output == "来自 kimi-k2-5"
    assert second.output == "来自 kimi-k2-6"


async def test_busy_429_falls_back_but_quota_429_does_not() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text="好"))
    sim.inject("kimi-k2-6", kind="overloaded", always=True)
    async with sim_client(sim) as client:
        result = await Agent(client=client).run("你好")
    assert result.steps[0].model == "kimi-k2-5"

    sim = GatewaySimulator(responder=lambda r: Reply(text="好"))
    sim.inject("kimi-k2-6", kind="quota", always=True)
    async with sim_client(sim) as client:
        with pytest.raises(ModelFailedError) as caught:
            await Agent(client=client).run("你好")
    assert isinstance(caught.value.cause, QuotaExceededError)
    assert [r.model for r in sim.requests] == ["kimi-k2-6"], "no retry, no fallback"
    assert caught.value.messages[0].content == "你好"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError),
                                               (402, PaymentRequiredError),
                                               (422, BadRequestError)])
async def test_auth_payment_and_bad_request_never_fall_back(
    status: int, error: type[Exception]
) -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text="好"))
    sim.inject("kimi-k2-6", status=status, always=True)
    async with sim_client(sim) as client:
        with pytest.raises(ModelFailedError) as caught:
            await Agent(client=client).run("你好")
    assert isinstance(caught.value.cause, error)
    assert {r.model for r in sim.requests} == {"kimi-k2-6"}
    assert len(sim.requests) == 1


async def test_a_prompt_over_128k_goes_to_k2_5() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text="长文档已读完"))
    long_text = "合同条款：甲方应按时付款。" * 14_000  # ~ 130K tokens by the CJK estimate
    async with sim_client(sim) as client:
        result = await Agent(client=client).run(long_text)
    assert result.output == "长文档已读完"
    assert result.steps[0].model == "kimi-k2-5"
    assert result.steps[0].fallback_reason == "context_length"
    assert [r.model for r in sim.requests] == ["kimi-k2-5"], "k2-6 is not even tried"


async def test_without_fallback_the_error_surfaces() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text="好"))
    sim.inject("kimi-k2-6", status=503, always=True)
    async with sim_client(sim) as client:
        with pytest.raises(ModelFailedError, match="503"):
            await Agent(client=client, fallback=None).run("你好")


async def test_stream_falls_back_when_cut_before_anything_reached_the_caller() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text=f"{r.model} 的回答"))
    sim.inject("kimi-k2-6", kind="cut_before_done", after_chunks=1, always=True)
    async with sim_client(sim) as client:
        async with Agent(client=client).stream("你好") as run:
            texts = [e.text async for e in run if isinstance(e, TextDelta)]
    assert "".join(texts) == "kimi-k2-5 的回答"
    assert run.result.steps[0].model == "kimi-k2-5"


async def test_stream_cut_after_text_reached_the_caller_surfaces_with_partial_output() -> None:
    long_answer = "这是一个很长的回答，" * 20
    sim = GatewaySimulator(responder=lambda r: Reply(reasoning="想一想", text=long_answer))
    sim.inject("kimi-k2-6", kind="drop_mid_stream", after_chunks=6, always=True)
    async with sim_client(sim) as client:
        async with Agent(client=client).stream("讲个故事") as run:
            seen = ""
            with pytest.raises(ModelFailedError) as caught:
                async for event in run:
                    if isinstance(event, TextDelta):
                        seen += event.text
    assert {r.model for r in sim.requests} == {"kimi-k2-6"}, "no fallback once text was shown"
    partial = caught.value.partial
    assert partial is not None
    assert (partial.message.content or "").startswith(seen) or seen.startswith(
        partial.message.content or "")
    assert partial.message.reasoning_content == "想一想"
