"""Kimi's wire rules kept by the loop, streaming event order, structured output and logs."""

from __future__ import annotations

import io
import json

import pytest
from pydantic import BaseModel, Field

from kimi_agent import Agent, tool
from kimi_agent._logging import configure_logging, disable_logging
from kimi_agent.agent._events import (
    ReasoningDelta,
    RunFinished,
    RunStarted,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from kimi_agent.errors import OutputLengthError, OutputValidationError
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest, ToolCallSpec
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio


@tool
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号。
    """
    return {"order_id": order_id, "状态": "运输中"}


async def test_reasoning_and_opaque_ids_round_trip_byte_for_byte() -> None:
    ids = ["functions.get_order:0", "get_order:0"]

    def responder(request: SimRequest) -> Reply:
        step = sum(1 for m in request.messages if m["role"] == "assistant")
        if step < 2:
            return Reply(text="我先查一下。" if step == 0 else "",
                         reasoning=f"第{step}步推理",
                         tool_calls=[ToolCallSpec("get_order", {"order_id": "A1"}, id=ids[step])])
        return Reply(text="查完了")

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        result = await Agent(tools=[get_order], client=client).run("订单 A1 在哪？")
    assert result.output == "查完了", "text beside tool calls is not the final answer"
    last = sim.requests[-1].messages
    assistants = [m for m in last if m["role"] == "assistant"]
    assert [a["reasoning_content"] for a in assistants] == ["第0步推理", "第1步推理"]
    assert [a["tool_calls"][0]["id"] for a in assistants] == ids
    assert assistants[0]["content"] == "我先查一下。"
    assert "content" not in assistants[1], "empty content beside tool calls is omitted"
    tools = [m for m in last if m["role"] == "tool"]
    assert [t["tool_call_id"] for t in tools] == ids
    assert json.loads(tools[0]["content"]) == {"order_id": "A1", "状态": "运输中"}
    assert "运输中" in tools[0]["content"], "CJK results are not escaped"


async def test_missing_reasoning_is_sent_back_as_a_space() -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="好")
        return Reply(tool_calls=[("get_order", {"order_id": "A1"})])  # no reasoning at all

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        await Agent(tools=[get_order], client=client).run("查")
    assistant = sim.requests[-1].messages[-2]
    assert assistant["reasoning_content"] == " "


async def test_length_inside_reasoning_is_its_own_error_not_an_empty_answer() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(reasoning="想了很久" * 50,
                                                     finish_reason="length"))
    async with sim_client(sim) as client:
        with pytest.raises(OutputLengthError, match="max_tokens") as caught:
            await Agent(client=client).run("一个很难的问题")
    assert caught.value.messages[-1].content == "一个很难的问题"  # type: ignore[union-attr]


async def test_stream_events_come_in_a_sensible_order() -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(reasoning="整理结果", text="您的订单正在运输中。")
        return Reply(reasoning="用户想查订单", text="稍等，",
                     tool_calls=[("get_order", {"order_id": "A1"}),
                                 ("get_order", {"order_id": "B2"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        async with Agent(tools=[get_order], client=client).stream("订单在哪") as run:
            events = [e async for e in run]
    kinds = [e.kind for e in events]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    first_step_end = kinds.index("step_finished")
    step1 = kinds[:first_step_end]
    assert step1.index("reasoning_delta") < step1.index("text_delta") < step1.index(
        "tool_call_started")
    assert step1.count("tool_call_started") == 2 and step1.count("tool_call_finished") == 2
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [json.loads(e.arguments) for e in started] == [{"order_id": "A1"},
                                                          {"order_id": "B2"}]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert all(e.ok and e.record.duration >= 0 for e in finished)
    texts = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert texts == "稍等，您的订单正在运输中。"
    assert any(isinstance(e, ReasoningDelta) for e in events)
    assert sum(isinstance(e, StepFinished) for e in events) == 2
    assert run.result.output == "您的订单正在运输中。"
    assert events[-1].result is run.result  # type: ignore[union-attr]


class Ticket(BaseModel):
    category: str = Field(description="问题类别")
    urgent: bool
    summary: str


@pytest.mark.parametrize("model", ["kimi-k2-6", "kimi-k2-5"])
async def test_structured_output_on_both_models(model: str) -> None:
    answer = {"category": "物流", "urgent": True, "summary": "包裹三天未更新"}
    sim = GatewaySimulator(responder=lambda r: Reply(text=json.dumps(answer, ensure_ascii=False)))
    async with sim_client(sim) as client:
        agent = Agent(model=model, fallback=None, client=client, output_type=Ticket,
                      instructions="把客户的问题整理成工单。")
        result = await agent.run("我的包裹三天没动了，急！")
    assert result.output == Ticket(**answer)
    body = sim.requests[0].body
    system = body["messages"][0]["content"]
    if model == "kimi-k2-6":
        assert body["response_format"]["type"] == "json_schema"
        schema = body["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["category"]["description"] == "问题类别"
        assert "JSON Schema" not in system
    else:
        assert body["response_format"] == {"type": "json_object"}
        assert "JSON Schema" in system and "问题类别" in system


async def test_invalid_structured_output_is_sent_back_with_the_errors() -> None:
    replies = iter(['{"category": "物流"}',
                    '{"category": "物流", "urgent": false, "summary": "好"}'])
    sim = GatewaySimulator(responder=lambda r: Reply(text=next(replies)))
    async with sim_client(sim) as client:
        result = await Agent(client=client, output_type=Ticket).run("整理工单")
    assert result.output.summary == "好"
    correction = sim.requests[1].messages[-1]
    assert correction["role"] == "user" and "urgent" in correction["content"]
    assert [m.role for m in result.messages] == ["user", "assistant"], \
        "the failed attempt is not kept in the conversation"


async def test_structured_output_budget_is_bounded() -> None:
    sim = GatewaySimulator(responder=lambda r: Reply(text="不是 JSON"))
    async with sim_client(sim) as client:
        with pytest.raises(OutputValidationError):
            await Agent(client=client, output_type=Ticket, output_retries=1).run("整理工单")
    assert len(sim.requests) == 2


async def test_one_log_event_per_model_call_and_tool_call_with_secrets_redacted() -> None:
    buffer = io.StringIO()
    configure_logging("INFO", json=True, stream=buffer)

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="好")
        return Reply(tool_calls=[("get_order", {"order_id": "A1"})])

    try:
        sim = GatewaySimulator(responder=responder, api_key="sk-very-secret-key")
        async with sim_client(sim) as client:
            result = await Agent(tools=[get_order], client=client).run("查订单")
    finally:
        disable_logging()
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    steps = [e for e in events if e["event"] == "model_step"]
    tools = [e for e in events if e["event"] == "tool_call"]
    assert len(steps) == 2 and len(tools) == 1
    assert {e["run_id"] for e in steps + tools} == {result.run_id}
    assert steps[0]["model"] == "kimi-k2-6" and "cached_tokens" in steps[0]
    assert tools[0]["tool"] == "get_order" and tools[0]["status"] == "ok"
    assert "sk-very-secret-key" not in buffer.getvalue()
