"""The ready-made guardrails on a real agent run (simulator): a phone, an ID card and a bank
card (valid check digits) masked before the model and the session see them, and in the
streamed answer; near-misses (an order number, an amount) untouched; a sensitive word trips;
an answer that promises an amount no tool returned trips."""

from __future__ import annotations

import datetime as dt

import pytest
from kimi_agent_tools.guardrails.agent import (
    ClaimsGuardrail,
    PiiGuardrail,
    SensitiveWordsGuardrail,
)

from kimi_agent import Agent, GuardrailTripped, MemorySession, tool
from kimi_agent.events import TextDelta
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.guardrails.samples import bank_card, id_card
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

ID = id_card("110105", dt.date(1990, 3, 7), 2)
CARD = bank_card("622202", "1234567890", 19)


def echo(request: SimRequest) -> Reply:
    return Reply(text=f"已记录：{request.last_user_text}")


@pytest.mark.parametrize("streamed", [False, True])
async def test_pii_is_masked_in_and_out_and_near_misses_stay(streamed: bool) -> None:
    prompt = f"手机13812345678，身份证{ID}，银行卡{CARD}，订单A1024退款¥89.00"
    sim = GatewaySimulator(responder=echo)
    async with sim_client(sim) as client:
        agent = Agent(client=client, input_guardrails=[PiiGuardrail()],
                      output_guardrails=[PiiGuardrail()])
        session = MemorySession()
        shown = ""
        if streamed:
            async with agent.stream(prompt, session=session) as run:
                async for event in run:
                    if isinstance(event, TextDelta):
                        shown += event.text
            output = run.result.output
        else:
            output = shown = (await agent.run(prompt, session=session)).output
    sent = sim.last_request.messages[-1]["content"]
    for raw in ("13812345678", ID, CARD):
        assert raw not in sent and raw not in output and raw not in shown
    assert "138****5678" in sent and "订单A1024退款¥89.00" in sent
    assert shown == output
    stored = str([m.model_dump() for m in await session.get_items()])
    assert "13812345678" not in stored and ID not in stored


async def test_a_sensitive_word_written_around_the_list_trips() -> None:
    sim = GatewaySimulator(responder=echo)
    async with sim_client(sim) as client:
        agent = Agent(client=client, input_guardrails=[
            SensitiveWordsGuardrail(["退款骗子"], reply="请文明沟通，我们会认真处理。")])
        with pytest.raises(GuardrailTripped) as caught:
            await agent.run("你们就是 退-款 騙 子！")           # separators, traditional 騙
    assert caught.value.reply == "请文明沟通，我们会认真处理。" and not sim.requests


@tool
def get_order(order_id: str) -> dict[str, str]:
    """查询订单。

    Args:
        order_id: 订单号。
    """
    return {"订单": order_id, "可退金额": "¥89.00"}


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(("answer", "trips"), [
    ("订单 A1024 可退 ¥89.00，请确认。", False),
    ("订单 A1024 已退款 ¥120.00，退款单号 RF000009。", True),
])
async def test_an_answer_may_only_promise_what_a_tool_confirmed(
        answer: str, trips: bool, streamed: bool) -> None:
    def model(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=answer)
        return Reply(reasoning="查订单", tool_calls=[("get_order", {"order_id": "A1024"})])

    sim = GatewaySimulator(responder=model)
    async with sim_client(sim) as client:
        agent = Agent(client=client, tools=[get_order], output_guardrails=[ClaimsGuardrail()])
        shown = ""
        try:
            if streamed:
                async with agent.stream("A1024 能退多少？") as run:
                    async for event in run:
                        if isinstance(event, TextDelta):
                            shown += event.text
                output = run.result.output
            else:
                output = shown = (await agent.run("A1024 能退多少？")).output
        except GuardrailTripped as tripped:
            assert trips, tripped
            assert "120" not in shown and "RF000009" not in shown
            return
    assert not trips and output == answer and shown == answer
