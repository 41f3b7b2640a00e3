"""Scripted conversations: JSON/YAML scripts matched on the user message or on tool results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kimi_agent.testing import GatewaySimulator, Reply, Script, ScriptError, load_script

pytestmark = pytest.mark.anyio

SHOP_SCRIPT = """\
# 客服机器人：查询订单的多轮对话
turns:
  - name: 查两个订单
    when: {user_regex: "A1024.*B2048"}
    reply:
      reasoning: 用户问了两个订单，分别调用 get_order 查询，顺便查物流。
      tool_calls:
        - {name: get_order, arguments: {order_id: A1024}}
        - {name: get_order, arguments: {order_id: B2048}}
        - [get_shipping, {order_id: A1024}]
  - name: 结果回来了
    when: {tool: get_order, tool_result: 已发货}
    reply:
      reasoning: 两个订单都查到了。
      text: 您的订单 A1024 已发货（顺丰 SF123），B2048 正在备货。
  - when: {user: 退款}
    times: 1
    text: 好的，已为您提交退款申请。
  - when: {user: 谢谢}
    reply: 不客气，祝您生活愉快！
"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": desc,
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "订单号"}},
                "required": ["order_id"],
            },
        },
    }
    for name, desc in (("get_order", "查询订单状态。"), ("get_shipping", "查询物流。"))
]
RESULTS = {
    ("get_order", "A1024"): "订单 A1024：已发货",
    ("get_order", "B2048"): "订单 B2048：备货中",
    ("get_shipping", "A1024"): "顺丰 SF123，运输中",
}


@asynccontextmanager
async def served(sim: GatewaySimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        sim.serve() as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
        ) as client,
    ):
        yield client


async def ask(
    client: httpx.AsyncClient, messages: list[dict[str, Any]], stream: bool
) -> dict[str, Any]:
    """Send a request and return the assistant message, assembled from SSE when streaming."""
    request = {
        "model": "kimi-k2-6",
        "messages": messages,
        "tools": TOOLS,
        "max_tokens": 4096,
        "stream": stream,
    }
    response = await client.post("/chat/completions", json=request)
    assert response.status_code == 200, response.text
    if not stream:
        message: dict[str, Any] = response.json()["choices"][0]["message"]
        return message
    assembled: dict[str, Any] = {"role": "assistant", "content": "", "reasoning_content": ""}
    calls: dict[int, dict[str, Any]] = {}
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        for choice in json.loads(event)["choices"]:
            delta = choice["delta"]
            assembled["content"] += delta.get("content") or ""
            assembled["reasoning_content"] += delta.get("reasoning_content") or ""
            for part in delta.get("tool_calls", []):
                call = calls.setdefault(
                    part["index"], {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                if "id" in part:
                    call["id"] = part["id"]
                    call["function"]["name"] = part["function"]["name"]
                call["function"]["arguments"] += part["function"].get("arguments") or ""
    if calls:
        assembled["tool_calls"] = [calls[i] for i in sorted(calls)]
    return assembled


def echo_back(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant message as a careful client sends it back (docs/wire/kimi.md)."""
    wire: dict[str, Any] = {"role": "assistant"}
    if message.get("content"):
        wire["content"] = message["content"]
    if message.get("tool_calls"):
        wire["reasoning_content"] = message.get("reasoning_content") or " "
        wire["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"],
                },
            }
            for c in message["tool_calls"]
        ]
    return wire


def run_tools(message: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for call in message["tool_calls"]:
        args = json.loads(call["function"]["arguments"], strict=False)
        content = RESULTS[(call["function"]["name"], args["order_id"])]
        results.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return results


@pytest.mark.parametrize("stream", [False, True])
async def test_scripted_multi_turn_conversation_in_chinese(tmp_path: Path, stream: bool):
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP_SCRIPT, encoding="utf-8")
    sim = GatewaySimulator(script=path)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "你是一名耐心的客服助手。"},
        {"role": "user", "content": "我的订单 A1024 和 B2048 到哪了？"},
    ]
    async with served(sim) as client:
        first = await ask(client, messages, stream)
        assert first["reasoning_content"].startswith("用户问了两个订单")
        calls = first["tool_calls"]
        assert [c["function"]["name"] for c in calls] == ["get_order", "get_order", "get_shipping"]
        assert len({c["id"] for c in calls}) == 3

        messages += [echo_back(first), *run_tools(first)]
        second = await ask(client, messages, stream)
        assert second["content"] == "您的订单 A1024 已发货（顺丰 SF123），B2048 正在备货。"
        assert not second.get("tool_calls")

        messages += [echo_back(second), {"role": "user", "content": "好的，谢谢！"}]
        third = await ask(client, messages, stream)
        assert third["content"] == "不客气，祝您生活愉快！"

    assert [r.status for r in sim.requests] == [200, 200, 200]
    # the tool results went through unchanged, in the order of the calls
    sent = sim.requests[1].messages[-3:]
    assert [m["content"] for m in sent] == [
        "订单 A1024：已发货",
        "订单 B2048：备货中",
        "顺丰 SF123，运输中",
    ]
    assert [m["tool_call_id"] for m in sent] == [c["id"] for c in calls]
    # prompt caching across the turns of one conversation
    assert sim.requests[2].cached_tokens > sim.requests[1].cached_tokens > 0


async def test_a_json_script_and_a_list_script(tmp_path: Path):
    turns = [{"when": {"user": "你好"}, "reply": {"text": "您好！", "reasoning": "打招呼"}}]
    path = tmp_path / "hello.json"
    path.write_text(json.dumps({"turns": turns}, ensure_ascii=False), encoding="utf-8")
    for script in (path, str(path), turns, {"turns": turns}):
        sim = GatewaySimulator(script=script)
        async with served(sim) as client:
            response = await client.post(
                "/chat/completions",
                json={"model": "kimi-k2-5", "messages": [{"role": "user", "content": "你好呀"}]},
            )
        assert response.json()["choices"][0]["message"]["content"] == "您好！"


async def test_no_matching_turn_is_a_clear_500():
    sim = GatewaySimulator(script=[{"when": {"user": "订单"}, "text": "好的"}])
    async with served(sim) as client:
        response = await client.post(
            "/chat/completions",
            json={
                "model": "kimi-k2-6",
                "messages": [{"role": "user", "content": "今天天气怎么样？"}],
            },
        )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "simulator_error"
    assert "no script turn matched" in error["message"]
    assert "今天天气怎么样？" in error["message"]
    assert sim.errors and sim.last_request.status == 500


async def test_a_responder_answers_what_the_script_does_not():
    sim = GatewaySimulator(
        script=[{"when": {"user": "订单"}, "text": "脚本"}], responder=lambda _: Reply(text="回退")
    )
    async with served(sim) as client:
        texts = []
        for question in ("订单呢", "天气呢"):
            response = await client.post(
                "/chat/completions",
                json={"model": "kimi-k2-6", "messages": [{"role": "user", "content": question}]},
            )
            texts.append(response.json()["choices"][0]["message"]["content"])
    assert texts == ["脚本", "回退"]


def text_for(script: Script, model: str, messages: list[dict[str, Any]]) -> str | None:
    """The text the script answers a request with, matched without a server."""
    from kimi_agent.models._profiles import get_profile
    from kimi_agent.testing import SimRequest

    view = SimRequest(
        model=model,
        profile=get_profile(model),
        body={},
        messages=messages,
        tools=[],
        stream=False,
        max_tokens=None,
        response_format=None,
        headers={},
        index=0,
    )
    reply = script.answer(view)
    return reply.text if reply is not None else None


def test_matching_rules():
    script = load_script(
        [
            {"when": {"user": "退款"}, "times": 1, "model": "kimi-k2-6", "text": "k2-6 退款"},
            {"when": {"user_regex": r"^退款\d+$"}, "text": "正则"},
            {"when": {"tool_result_regex": "失败|错误", "user": "查"}, "text": "工具出错了"},
            {"when": {"tool": "get_order"}, "text": "订单结果"},
            {"when": {"user": "订单"}, "text": "不该在工具结果后匹配"},
            {"text": "兜底"},
        ]
    )
    user = [{"role": "user", "content": "退款123"}]
    assert text_for(script, "kimi-k2-5", user) == "正则"
    assert text_for(script, "kimi-k2-6", user) == "k2-6 退款"
    assert text_for(script, "kimi-k2-6", user) == "正则"  # times: 1 used up

    def after_tool(name: str, result: str, question: str = "查订单") -> list[dict[str, Any]]:
        call = {"id": "x:0", "type": "function", "function": {"name": name, "arguments": "{}"}}
        return [
            {"role": "user", "content": question},
            {"role": "assistant", "reasoning_content": " ", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "x:0", "content": result},
        ]

    assert text_for(script, "kimi-k2-6", after_tool("get_order", "错误：超时")) == "工具出错了"
    assert text_for(script, "kimi-k2-6", after_tool("get_order", "已发货")) == "订单结果"
    assert text_for(script, "kimi-k2-6", after_tool("get_x", "已发货", "订单")) == "兜底"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("turns: [", "not valid YAML"),
        ("turns:\n  - when: {usr: 你好}\n    text: hi\n", "unknown condition(s) ['usr']"),
        ("turns:\n  - whenn: {user: 你好}\n    text: hi\n", "turns[0]: unknown key(s) ['whenn']"),
        ("turns:\n  - when: {user_regex: '('}\n    text: hi\n", "not a valid regex"),
        ("turns:\n  - when: {user: hi}\n", "a reply needs"),
        ("turns:\n  - text: hi\n    reply: {text: hi}\n", "not both"),
        ("turns:\n  - tool_calls: [{arguments: {}}]\n", "tool_calls[0]"),
        ("turns:\n  - text: hi\n    times: 0\n", "times"),
        ("hello: world\n", "unknown top-level key"),
        ("- 42\n", "a turn must be a mapping"),
    ],
)
def test_bad_scripts_say_where_and_what(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScriptError) as caught:
        GatewaySimulator(script=path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_bad_json_and_missing_files(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text("{'turns': []}", encoding="utf-8")
    with pytest.raises(ScriptError, match="not valid JSON"):
        load_script(path)
    with pytest.raises(ScriptError, match="cannot read script"):
        load_script(tmp_path / "missing.yaml")


def test_reset_makes_turns_usable_again():
    sim = GatewaySimulator(script=[{"times": 1, "text": "一次"}])
    assert sim.script is not None
    sim.script.turns[0].used = 1
    sim.reset()
    assert sim.script.turns[0].used == 0
