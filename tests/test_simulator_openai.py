"""Real clients on the simulator: the official `openai` SDK and openai-agents, over loopback.

Users test their whole service on the simulator, not only kimi-agent code, so the ordinary
OpenAI SDK patterns must meet the simulator the way they meet the gateway: the tool loop that
appends `response.choices[0].message` (with its `reasoning_content`), streamed and not,
`response_format`, and function-tool schemas with `title`, `$defs` and `$ref`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from pydantic import BaseModel

from kimi_agent.testing import GatewaySimulator, Reply, SimRequest

pytestmark = pytest.mark.anyio

GET_ORDER = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "查询订单状态。",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "订单号"}},
            "required": ["order_id"],
        },
    },
}


def shop(request: SimRequest) -> Reply:
    """Asks for the order, then answers from the tool result (or JSON when asked)."""
    if request.wants_json:
        return Reply(
            reasoning="按格式回答。", text=json.dumps({"状态": "已发货"}, ensure_ascii=False)
        )
    if request.ends_with_tool_results:
        result = request.tool_results[0].content
        return Reply(reasoning="结果到了。", text=f"您的订单{result}。")
    if request.tools:
        return Reply(
            reasoning="用户问订单，先查。", tool_calls=[("get_order", {"order_id": "A1024"})]
        )
    return Reply(reasoning="直接回答。", text="您好，请问有什么可以帮您？")


@pytest.fixture
async def served() -> AsyncIterator[tuple[GatewaySimulator, openai.AsyncOpenAI]]:
    sim = GatewaySimulator(responder=shop)
    async with sim.serve() as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=sim.api_key, max_retries=0)
        try:
            yield sim, client
        finally:
            await client.close()


async def test_the_sdk_tool_loop_appending_the_message(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    sim, client = served
    messages: list[Any] = [{"role": "user", "content": "我的订单 A1024 到哪了？"}]
    first = await client.chat.completions.create(
        model="kimi-k2-6", messages=messages, tools=[GET_ORDER], max_tokens=2048
    )
    message = first.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "get_order"
    assert getattr(message, "reasoning_content", None) == "用户问订单，先查。"
    messages.append(message)  # the SDK's own pattern: content "" and reasoning_content go back
    for call in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "已发货"})
    second = await client.chat.completions.create(
        model="kimi-k2-6", messages=messages, tools=[GET_ORDER], max_tokens=2048
    )
    assert second.choices[0].message.content == "您的订单已发货。"
    sent = sim.last_request.messages[1]
    assert sent["reasoning_content"] == "用户问订单，先查。" and sent["content"] == ""
    assert first.usage is not None and first.usage.prompt_tokens > 0


async def test_the_sdk_tool_loop_streamed(served: tuple[GatewaySimulator, openai.AsyncOpenAI]):
    sim, client = served
    messages: list[Any] = [{"role": "user", "content": "我的订单 A1024 到哪了？"}]
    reasoning, calls = "", {}
    stream = await client.chat.completions.create(
        model="kimi-k2-6", messages=messages, tools=[GET_ORDER], stream=True
    )
    async for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        for part in delta.tool_calls or []:
            slot = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += part.id or ""
            if part.function is not None:
                slot["name"] += part.function.name or ""
                slot["arguments"] += part.function.arguments or ""
    assert reasoning == "用户问订单，先查。"
    assert json.loads(calls[0]["arguments"]) == {"order_id": "A1024"}
    tool_calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        }
        for c in calls.values()
    ]
    messages.append({"role": "assistant", "reasoning_content": reasoning, "tool_calls": tool_calls})
    messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": "已发货"})
    text = ""
    async for chunk in await client.chat.completions.create(
        model="kimi-k2-6", messages=messages, tools=[GET_ORDER], stream=True
    ):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert text == "您的订单已发货。"
    assert [r.status for r in sim.requests] == [200, 200]


async def test_the_sdk_loop_without_reasoning_content_meets_moonshots_refusal(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    _, client = served
    messages: list[Any] = [{"role": "user", "content": "我的订单 A1024 到哪了？"}]
    first = await client.chat.completions.create(
        model="kimi-k2-6", messages=messages, tools=[GET_ORDER]
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages.append({"role": "assistant", "tool_calls": [call.model_dump(exclude={"index"})]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "已发货"})
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="kimi-k2-6", messages=messages, tools=[GET_ORDER]
        )
    assert caught.value.body == {
        "message": "thinking is enabled but reasoning_content is missing in assistant tool "
        "call message at index 1",
        "type": "invalid_request_error",
    }


class Status(BaseModel):
    状态: str


async def test_response_format_json_schema_and_json_object(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    sim, client = served
    messages: Any = [{"role": "user", "content": "订单 A1024 的状态，用 JSON 回答。"}]
    parsed = await client.chat.completions.parse(
        model="kimi-k2-6", messages=messages, response_format=Status
    )
    assert parsed.choices[0].message.parsed == Status(状态="已发货")
    schema = sim.last_request.body["response_format"]["json_schema"]["schema"]
    assert schema["title"] == "Status" and schema["additionalProperties"] is False
    plain = await client.chat.completions.create(
        model="kimi-k2-5", messages=messages, response_format={"type": "json_object"}
    )
    assert json.loads(plain.choices[0].message.content or "") == {"状态": "已发货"}
    with pytest.raises(openai.BadRequestError, match="only has JSON mode"):
        await client.chat.completions.parse(
            model="kimi-k2-5", messages=messages, response_format=Status
        )


class Item(BaseModel):
    sku: str
    qty: int = 1


class Cart(BaseModel):
    user_id: str
    items: list[Item]
    note: str | None = None


async def test_pydantic_function_tool_schemas_with_defs_and_titles_are_accepted(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    sim, client = served
    tool: Any = openai.pydantic_function_tool(Cart, name="add_to_cart")
    parameters = tool["function"]["parameters"]
    assert "$defs" in parameters and parameters["title"] == "Cart"
    answer = await client.chat.completions.create(
        model="kimi-k2-6", messages=[{"role": "user", "content": "你好"}], tools=[tool]
    )
    assert answer.choices[0].message.tool_calls
    assert sim.last_request.ok


async def test_sampling_defaults_the_sdk_lets_users_pass(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    _, client = served
    answer = await client.chat.completions.create(
        model="kimi-k2-6",
        messages=[{"role": "user", "content": "你好"}],
        temperature=1.0,
        n=1,
        top_p=0.95,
        stop=["\n\n"],
        seed=7,
        user="customer-42",
    )
    assert answer.choices[0].message.content == "您好，请问有什么可以帮您？"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="kimi-k2-6", messages=[{"role": "user", "content": "你好"}], temperature=0.2
        )
    assert caught.value.message.endswith("invalid temperature: only 1 is allowed for this model")


async def test_gateway_errors_reach_the_sdk_with_code_and_headers(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    sim, client = served
    sim.inject(kind="concurrency_limit")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="kimi-k2-6", messages=[{"role": "user", "content": "你好"}]
        )
    assert caught.value.code == "concurrency_limit"
    assert caught.value.response.headers["x-ratelimit-remaining"]
    assert caught.value.request_id == sim.last_request.request_id


@function_tool
def add_to_cart(user_id: str, items: list[Item], note: str | None = None) -> str:
    """把商品加入购物车。

    Args:
        user_id: 用户编号。
        items: 要加入的商品。
        note: 备注。
    """
    return "已加入"


async def test_openai_agents_function_tools_on_the_simulator(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    sim, client = served
    set_tracing_disabled(True)
    model = OpenAIChatCompletionsModel(model="kimi-k2-6", openai_client=client)
    agent = Agent(name="客服", instructions="礼貌回答。", tools=[add_to_cart], model=model)
    sim.responder = lambda _: Reply(reasoning="打个招呼。", text="您好！")
    result = await Runner.run(agent, "你好")
    assert result.final_output == "您好！"
    sent = sim.last_request.tools[0]["function"]["parameters"]
    assert "$defs" in sent and sent["title"] == "add_to_cart_args"  # walle takes both


async def test_openai_agents_tool_round_trip_drops_reasoning_content(
    served: tuple[GatewaySimulator, openai.AsyncOpenAI],
):
    """openai-agents' chat-completions model does not send `reasoning_content` back, which
    Moonshot refuses while thinking is on: the simulator shows it as the service would."""
    sim, client = served
    set_tracing_disabled(True)
    model = OpenAIChatCompletionsModel(model="kimi-k2-6", openai_client=client)
    agent = Agent(name="客服", tools=[add_to_cart], model=model)
    sim.responder = lambda request: (
        Reply(text="好了。")
        if request.ends_with_tool_results
        else Reply(
            reasoning="加购物车。", tool_calls=[("add_to_cart", {"user_id": "u1", "items": []})]
        )
    )
    with pytest.raises(openai.BadRequestError, match="reasoning_content is missing"):
        await Runner.run(agent, "帮我把 SKU-1 加入购物车")
    assert [r.status for r in sim.requests] == [200, 400]
