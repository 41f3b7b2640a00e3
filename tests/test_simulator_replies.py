"""Replies in Moonshot's shapes: JSON completions, SSE framing, tool calls, usage and caching."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_agent.testing import GatewaySimulator, Reply, SimRequest, ToolCallSpec
from kimi_agent.wire import AssistantMessage, ChatCompletion, ToolMessage, UserMessage

pytestmark = pytest.mark.anyio

QUESTION = "我的订单 A1024 到哪了？还有 B2048 呢？"
REASONING = "用户问了两个订单，我需要分别查询它们的状态。"
ANSWER = "您的两个订单都已发货：A1024 预计明天送达，B2048 预计后天送达。"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": "查询订单。",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    for name in ("get_order", "get_shipping")
]


def parallel_calls(_: SimRequest) -> Reply:
    return Reply(
        reasoning=REASONING,
        tool_calls=[
            ("get_order", {"order_id": "A1024"}),
            ToolCallSpec("get_order", {"order_id": "B2048", "备注": "加急\n「特快」"}),
            ("get_shipping", {}),
        ],
    )


@asynccontextmanager
async def served(
    responder: Callable[[SimRequest], Any] | None = None, **kwargs: Any
) -> AsyncIterator[tuple[GatewaySimulator, httpx.AsyncClient]]:
    """A simulator and a raw httpx client on a real loopback server."""
    sim = GatewaySimulator(responder=responder, **kwargs)
    async with (
        sim.serve() as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": "Bearer sim-key"}, timeout=30
        ) as client,
    ):
        yield sim, client


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "kimi-k2-6", "messages": [{"role": "user", "content": QUESTION}], **fields}


def sse(raw: str) -> list[str]:
    """The data of each SSE event; asserts the `data: ...\\n\\n` framing."""
    assert raw.endswith("\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e.removeprefix("data: ") for e in events]


async def test_non_streamed_completion_shape():
    async with served(parallel_calls) as (sim, client):
        response = await client.post("/chat/completions", json=body(tools=TOOLS))
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert data["model"] == "kimi-k2-6"
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"] == ""
    assert message["reasoning_content"] == REASONING
    calls = message["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1, 2]
    assert all(
        c["type"] == "function" and isinstance(c["function"]["arguments"], str) for c in calls
    )
    assert json.loads(calls[1]["function"]["arguments"], strict=False) == {
        "order_id": "B2048",
        "备注": "加急\n「特快」",
    }
    assert calls[2]["function"]["arguments"] == "{}"
    assert len({c["id"] for c in calls}) == 3
    assert [c["id"] for c in calls] == sim.last_request.tool_call_ids
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert usage["cached_tokens"] == usage["prompt_tokens_details"]["cached_tokens"] == 0
    parsed = ChatCompletion.model_validate(data)  # our own wire models read it
    assert parsed.message.tool_calls is not None and len(parsed.message.tool_calls) == 3


async def test_text_reply_finishes_with_stop():
    async with served(lambda _: Reply(text=ANSWER, reasoning=REASONING)) as (_, client):
        data = (await client.post("/chat/completions", json=body())).json()
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["message"]["content"] == ANSWER
    assert "tool_calls" not in data["choices"][0]["message"]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_sse_framing(include_usage: bool):
    def answer(_: SimRequest) -> Reply:
        return Reply(
            text=ANSWER, reasoning=REASONING, tool_calls=[("get_order", {"order_id": "A1024"})]
        )

    extra: dict[str, Any] = {"stream": True, "tools": TOOLS}
    if include_usage:
        extra["stream_options"] = {"include_usage": True}
    async with served(answer) as (_, client):
        response = await client.post("/chat/completions", json=body(**extra))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["msh-request-id"]
    events = sse(response.text)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    if include_usage:
        trailer = chunks.pop()
        assert trailer["choices"] == []
        assert trailer["usage"]["total_tokens"] > 0
    finish = chunks[-1]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == "tool_calls"
    assert finish["usage"]["prompt_tokens"] > 0  # Moonshot's own place for usage
    if include_usage:
        assert trailer["usage"] == finish["usage"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])

    kinds = []
    for chunk in chunks[1:-1]:
        (key,) = chunk["choices"][0]["delta"].keys()
        kinds.append(key)
    # reasoning first, then content, then tool calls — each in one run
    assert kinds == sorted(kinds, key=["reasoning_content", "content", "tool_calls"].index)
    assert kinds.count("reasoning_content") > 1 and kinds.count("content") > 1
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == REASONING
    assert "".join(d.get("content", "") for d in deltas) == ANSWER


async def test_streamed_tool_calls_reassemble():
    async with served(parallel_calls) as (sim, client):
        response = await client.post("/chat/completions", json=body(stream=True, tools=TOOLS))
    chunks = [json.loads(e) for e in sse(response.text)[:-1]]
    calls: dict[int, dict[str, Any]] = {}
    fragments: dict[int, int] = {}
    order: list[int] = []
    for chunk in chunks:
        for delta in chunk["choices"][0]["delta"].get("tool_calls", []):
            index = delta["index"]
            if "id" in delta:  # a header: index, id, type, name and empty arguments
                assert index not in calls
                assert delta["type"] == "function" and delta["function"]["arguments"] == ""
                calls[index] = {"id": delta["id"], "name": delta["function"]["name"], "args": ""}
                order.append(index)
            else:  # a fragment: only index and arguments
                assert set(delta) == {"index", "function"}
                assert set(delta["function"]) == {"arguments"}
                calls[index]["args"] += delta["function"]["arguments"]
                fragments[index] = fragments.get(index, 0) + 1
    assert order == [0, 1, 2]  # calls arrive one after another
    assert all(n >= 2 for n in fragments.values())  # arguments come in several pieces
    assert [json.loads(calls[i]["args"], strict=False) for i in order] == [
        {"order_id": "A1024"},
        {"order_id": "B2048", "备注": "加急\n「特快」"},
        {},
    ]
    assert [calls[i]["name"] for i in order] == ["get_order", "get_order", "get_shipping"]
    assert [calls[i]["id"] for i in order] == sim.last_request.tool_call_ids
    assert len({calls[i]["id"] for i in order}) == 3


async def test_tool_call_ids_vary_in_style_and_repeat_across_turns():
    async with served(parallel_calls) as (_, client):
        ids = []
        for _ in range(4):
            data = (await client.post("/chat/completions", json=body(tools=TOOLS))).json()
            ids.append([c["id"] for c in data["choices"][0]["message"]["tool_calls"]])
    assert ids[0] == ["get_order:0", "get_order:1", "get_shipping:2"]
    assert ids[1] == ["functions.get_order:0", "functions.get_order:1", "functions.get_shipping:2"]
    assert ids[2] == ["get_order_0", "get_order_1", "get_shipping_2"]
    assert ids[3] == ids[0]  # not unique across turns, like Kimi's


async def test_fixed_id_style_and_explicit_ids():
    def answer(_: SimRequest) -> Reply:
        return Reply(tool_calls=[("get_order", {}), ToolCallSpec("get_order", "{}", id="call-x")])

    async with served(answer, id_style="functions") as (sim, client):
        earlier = [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "reasoning_content": " ",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_order", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "ok"},
        ]
        await client.post("/chat/completions", json=body(messages=earlier, tools=TOOLS))
    # the "functions" style counts the calls of the conversation so far
    assert sim.last_request.tool_call_ids == ["functions.get_order:1", "call-x"]


async def test_finish_reason_length_inside_the_reasoning():
    async with served(lambda _: Reply(reasoning="让我想想……", finish_reason="length")) as (_, c):
        plain = (await c.post("/chat/completions", json=body())).json()
        streamed = sse((await c.post("/chat/completions", json=body(stream=True))).text)
    assert plain["choices"][0]["finish_reason"] == "length"
    assert plain["choices"][0]["message"]["content"] == ""
    finish = json.loads(streamed[-2])["choices"][0]
    assert finish["finish_reason"] == "length"
    assert not any(
        "content" in json.loads(e)["choices"][0]["delta"]
        and json.loads(e)["choices"][0]["delta"]["content"]
        for e in streamed[1:-1]
    )


async def test_usage_override():
    reply = Reply(text="好", usage={"completion_tokens": 9000, "cached_tokens": 5})
    async with served(lambda _: reply) as (_, client):
        usage = (await client.post("/chat/completions", json=body())).json()["usage"]
    assert usage["completion_tokens"] == 9000 and usage["cached_tokens"] == 5
    assert usage["prompt_tokens_details"]["cached_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + 9000


async def test_async_responder_and_string_replies():
    seen: list[SimRequest] = []

    async def responder(request: SimRequest) -> str:
        seen.append(request)
        await anyio.sleep(0)
        return f"收到：{request.last_user_text}"

    async with served(responder) as (_, client):
        data = (await client.post("/chat/completions", json=body())).json()
    assert data["choices"][0]["message"]["content"] == f"收到：{QUESTION}"
    assert seen[0].stream is False and seen[0].model == "kimi-k2-6"


async def test_the_request_view():
    seen: list[SimRequest] = []

    def responder(request: SimRequest) -> Reply:
        seen.append(request)
        return Reply(text="好的")

    messages = [
        {"role": "system", "content": "你是客服。"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "查一下"}, {"type": "text", "text": " A1024"}],
        },
        {
            "role": "assistant",
            "reasoning_content": "查。",
            "tool_calls": [
                {
                    "id": "get_order:0",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id":"A1024"}'},
                },
                {
                    "id": "get_shipping:1",
                    "type": "function",
                    "function": {"name": "get_shipping", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "get_shipping:1", "content": "顺丰 SF123"},
        {"role": "tool", "tool_call_id": "get_order:0", "content": "已发货"},
    ]
    async with served(responder) as (_, client):
        await client.post(
            "/chat/completions",
            json=body(messages=messages, tools=TOOLS, stream=True, max_tokens=2048),
        )
    request = seen[0]
    assert request.last_user_text == "查一下 A1024"
    assert request.ends_with_tool_results and request.turn == 1
    assert [(r.name, r.content) for r in request.tool_results] == [
        ("get_shipping", "顺丰 SF123"),
        ("get_order", "已发货"),
    ]
    assert request.tool_results[1].arguments == '{"order_id":"A1024"}'
    assert request.tool_names == ["get_order", "get_shipping"]
    assert request.stream and request.max_tokens == 2048 and request.index == 0
    assert request.headers["authorization"] == "Bearer sim-key"
    wire = request.wire_messages
    assert isinstance(wire[1], UserMessage) and isinstance(wire[2], AssistantMessage)
    assert isinstance(wire[-1], ToolMessage)


async def test_responder_errors_answer_500_and_are_kept():
    def broken(_: SimRequest) -> Reply:
        raise ValueError("没有这个订单")

    async with served(broken) as (sim, client):
        response = await client.post("/chat/completions", json=body())
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "simulator_error"
    assert "ValueError: 没有这个订单" in error["message"]
    assert isinstance(sim.errors[0], ValueError)


async def test_malformed_tool_calls_from_a_responder_are_reported():
    async with served(lambda _: Reply(tool_calls=["get_order"])) as (sim, client):  # type: ignore[list-item]
        response = await client.post("/chat/completions", json=body())
    assert response.status_code == 500
    assert "(name, arguments) tuple" in response.json()["error"]["message"]
    assert isinstance(sim.errors[0], TypeError)


async def test_echo_is_the_default_responder():
    async with served() as (_, client):
        text = (await client.post("/chat/completions", json=body())).json()
        json_mode = (
            await client.post(
                "/chat/completions", json=body(response_format={"type": "json_object"})
            )
        ).json()
    assert QUESTION in text["choices"][0]["message"]["content"]
    assert json.loads(json_mode["choices"][0]["message"]["content"])["echo"].endswith(QUESTION)


async def test_chinese_text_survives_unchanged():
    async with served(lambda r: Reply(text=r.last_user_text, reasoning=REASONING)) as (sim, c):
        response = await c.post("/chat/completions", json=body())
        streamed = await c.post("/chat/completions", json=body(stream=True))
    raw = response.content
    assert QUESTION.encode() in raw and REASONING.encode() in raw  # UTF-8, not \u escapes
    assert b"\\u" not in raw and b"\\u" not in streamed.content
    assert response.json()["choices"][0]["message"]["content"] == QUESTION
    assert sim.requests[0].body["messages"][0]["content"] == QUESTION


async def test_prompt_caching_reports_a_repeated_prefix():
    system = {"role": "system", "content": "你是一名耐心的客服助手。" * 40}
    first = [system, {"role": "user", "content": QUESTION}]
    async with served(lambda _: Reply(text=ANSWER)) as (sim, client):
        one = (
            await client.post("/chat/completions", json=body(messages=first, tools=TOOLS))
        ).json()
        follow_up = [
            *first,
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": "谢谢"},
        ]
        two = (
            await client.post(
                "/chat/completions", json=body(messages=follow_up, tools=TOOLS, stream=True)
            )
        ).text
        other_model = (
            await client.post(
                "/chat/completions", json=body(model="kimi-k2-5", messages=first, tools=TOOLS)
            )
        ).json()
        other_tools = (
            await client.post("/chat/completions", json=body(messages=first, tools=TOOLS[:1]))
        ).json()
    assert one["usage"]["cached_tokens"] == 0
    usage = json.loads(sse(two)[-2])["choices"][0]["usage"]
    assert 0 < usage["cached_tokens"] < usage["prompt_tokens"]
    assert usage["cached_tokens"] >= one["usage"]["prompt_tokens"]  # the whole first prompt
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["cached_tokens"]
    assert other_model["usage"]["cached_tokens"] == 0  # caches are per model
    assert other_tools["usage"]["cached_tokens"] == 0  # the tools lead the prefix
    assert sim.requests[1].cached_tokens == usage["cached_tokens"]


@pytest.mark.parametrize("stream", [False, True])
async def test_in_process_through_asgi_transport(stream: bool):
    sim = GatewaySimulator(responder=parallel_calls)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim/v1", headers={"Authorization": "Bearer sim-key"}
    ) as client:
        response = await client.post("/chat/completions", json=body(stream=stream, tools=TOOLS))
        models = await client.get("/models")
    assert response.status_code == 200
    if stream:
        assert sse(response.text)[-1] == "[DONE]"
    else:
        assert response.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert models.status_code == 200
    assert [r.path for r in sim.requests] == ["/v1/chat/completions", "/v1/models"]


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
_args = st.dictionaries(_text, st.one_of(_text, st.integers(), st.booleans()), max_size=4)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_text, reasoning=_text, arguments=st.lists(_args, max_size=3))
async def test_any_text_and_arguments_survive_streaming(
    text: str, reasoning: str, arguments: list[dict[str, Any]]
):
    reply = Reply(
        text=text,
        reasoning=reasoning,
        tool_calls=[("tool_" + str(i), a) for i, a in enumerate(arguments)],
    )
    sim = GatewaySimulator(responder=lambda _: reply)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim/v1", headers={"Authorization": "Bearer sim-key"}
    ) as client:
        streamed = (await client.post("/chat/completions", json=body(stream=True))).text
        plain = (await client.post("/chat/completions", json=body())).json()
    content, thought, args = "", "", [""] * len(arguments)
    for event in sse(streamed)[:-1]:
        for choice in json.loads(event)["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            thought += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls", []):
                args[call["index"]] += call["function"]["arguments"]
    assert (content, thought) == (text, reasoning)
    assert [json.loads(a, strict=False) for a in args] == arguments
    message = plain["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == (text, reasoning)
