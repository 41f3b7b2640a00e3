"""Guardrails on what comes in, what goes out and what tools get and give (issue 20): each
passes, rewrites or trips, streamed and not, with Chinese text; a trip ends the run with
`GuardrailTripped`, the customer sees the configured reply, and the session stays valid."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kimi_agent import Agent, GuardrailResult, GuardrailTripped, MemorySession, RunContext, tool
from kimi_agent.events import TextDelta
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.wire import AssistantMessage, UserMessage
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

PHONE = re.compile(r"1[3-9]\d{9}")


def mask_phone(ctx: RunContext[Any], text: str) -> GuardrailResult:
    masked = PHONE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)
    return GuardrailResult.rewrite(masked, "手机号") if masked != text else GuardrailResult.allow()


mask_phone.holdback = lambda text: 10  # type: ignore[attr-defined]  # a number may still grow


async def no_abuse(ctx: RunContext[Any], text: str) -> GuardrailResult | None:
    if "傻" in text:
        return GuardrailResult.trip("请文明用语，我们很乐意为您服务。", "辱骂")
    return None


def no_promises(ctx: RunContext[Any], text: str) -> GuardrailResult | None:
    if "保证" in text:
        return GuardrailResult.trip("这个问题我需要请同事确认后回复您。", "承诺")
    return None


def echo(request: SimRequest) -> Reply:
    return Reply(text=f"您说的是：{request.last_user_text}，联系电话 13812345678。")


async def run(agent: Agent[Any, str], prompt: str, session: MemorySession, streamed: bool
              ) -> tuple[str, str]:
    if not streamed:
        result = await agent.run(prompt, session=session)
        return result.output, result.output
    shown = ""
    async with agent.stream(prompt, session=session) as handle:
        async for event in handle:
            if isinstance(event, TextDelta):
                shown += event.text
    return handle.result.output, shown


@pytest.mark.parametrize("streamed", [False, True])
async def test_input_and_output_rewrites_mask_phone_numbers(streamed: bool) -> None:
    sim = GatewaySimulator(responder=echo)
    async with sim_client(sim) as client:
        agent = Agent(client=client, input_guardrails=[mask_phone],
                      output_guardrails=[mask_phone])
        session = MemorySession()
        output, shown = await run(agent, "我的手机是13987654321，订单到哪了？", session, streamed)
    assert sim.last_request.messages[-1]["content"] == "我的手机是139****4321，订单到哪了？"
    expected = "您说的是：我的手机是139****4321，订单到哪了？，联系电话 138****5678。"
    assert output == shown == expected
    stored = await session.get_items()
    assert "13987654321" not in str([m.model_dump() for m in stored])
    assert "13812345678" not in str([m.model_dump() for m in stored])


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_input_trip_answers_with_the_reply_and_keeps_the_session_valid(
        streamed: bool) -> None:
    sim = GatewaySimulator(responder=echo)
    async with sim_client(sim) as client:
        agent = Agent(client=client, input_guardrails=[no_abuse])
        session = MemorySession()
        with pytest.raises(GuardrailTripped) as caught:
            await run(agent, "你们客服真傻", session, streamed)
        assert caught.value.reply == "请文明用语，我们很乐意为您服务。"
        assert caught.value.kind == "input" and caught.value.guardrail == "no_abuse"
        assert len(sim.requests) == 0                            # the model never saw it
        assert [type(m) for m in await session.get_items()] == [UserMessage, AssistantMessage]
        output, _ = await run(agent, "订单到哪了？", session, streamed)   # goes on as usual
    assert output.startswith("您说的是：订单到哪了？")


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_output_trip_replaces_the_answer_before_it_reaches_the_customer(
        streamed: bool) -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text="我保证明天一定到货！"))
    async with sim_client(sim) as client:
        agent = Agent(client=client, output_guardrails=[no_promises])
        session = MemorySession()
        shown = ""
        with pytest.raises(GuardrailTripped) as caught:
            if streamed:
                async with agent.stream("什么时候到？", session=session) as handle:
                    async for event in handle:
                        if isinstance(event, TextDelta):
                            shown += event.text
            else:
                await agent.run("什么时候到？", session=session)
    assert "保证" not in shown
    assert caught.value.reply == "这个问题我需要请同事确认后回复您。"
    answer = (await session.get_items())[-1]
    assert isinstance(answer, AssistantMessage) and answer.content == caught.value.reply


@tool
def lookup_customer(phone: str) -> str:
    """按手机号查顾客。

    Args:
        phone: 手机号。
    """
    return f"顾客 张伟，手机 {phone}，身份证 110101199003074518"


def ids_out(ctx: RunContext[Any], text: str) -> GuardrailResult:
    if "身份证" in text:
        return GuardrailResult.rewrite(re.sub(r"\d{17}[\dX]", "[已隐藏]", text))
    if "13800000000" in text:
        return GuardrailResult.trip("该号码无法查询。", "测试号码")
    return GuardrailResult.allow()


def customer_model(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text=request.tool_results[0].content)
    phone = re.search(r"\d{11}", request.last_user_text)
    return Reply(reasoning="查顾客", tool_calls=[
        ("lookup_customer", {"phone": phone.group(0) if phone else ""})])


async def test_tool_guardrails_rewrite_results_and_trip_on_arguments() -> None:
    sim = GatewaySimulator(responder=customer_model)
    async with sim_client(sim) as client:
        agent = Agent(client=client, tools=[lookup_customer], tool_guardrails=[ids_out])
        session = MemorySession()
        result = await agent.run("查一下 13912345678", session=session)
        assert result.output == "顾客 张伟，手机 13912345678，身份证 [已隐藏]"
        with pytest.raises(GuardrailTripped) as caught:
            await agent.run("查一下 13800000000", session=session)
        assert caught.value.kind == "tool" and caught.value.reply == "该号码无法查询。"
        after = await agent.run("查一下 13912345678", session=session)   # history valid
    assert after.status == "completed"


async def test_an_input_trip_after_a_mask_stores_the_masked_message() -> None:
    sim = GatewaySimulator(responder=echo)
    async with sim_client(sim) as client:
        agent = Agent(client=client, input_guardrails=[mask_phone, no_abuse])
        session = MemorySession()
        with pytest.raises(GuardrailTripped):
            await agent.run("我的手机13987654321，你们真傻", session=session)
    first = (await session.get_items())[0]
    assert isinstance(first, UserMessage) and first.content == "我的手机139****4321，你们真傻"
