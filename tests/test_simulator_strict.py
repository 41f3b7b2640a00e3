"""The simulator refuses what Moonshot refuses, with Moonshot's status, error type and message.

Every test talks to a real loopback server with raw httpx requests.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kimi_agent._tokens import estimate_text
from kimi_agent.testing import GatewaySimulator

pytestmark = pytest.mark.anyio

USER = {"role": "user", "content": "我的订单 A1024 到哪了？"}
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
CALL = {
    "id": "get_order:0",
    "type": "function",
    "function": {"name": "get_order", "arguments": '{"order_id":"A1024"}'},
}


@pytest.fixture
async def served() -> AsyncIterator[tuple[GatewaySimulator, httpx.AsyncClient]]:
    sim = GatewaySimulator()
    async with (
        sim.serve() as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
        ) as client,
    ):
        yield sim, client


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "kimi-k2-6", "messages": [USER], **fields}


def tool_step(assistant: dict[str, Any], *results: dict[str, Any]) -> dict[str, Any]:
    return body(messages=[USER, assistant, *results], tools=[GET_ORDER])


def assistant_with(**fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "reasoning_content": "先查订单。", "tool_calls": [CALL], **fields}


def tool_result(call_id: str = "get_order:0", content: str = "已发货") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def refused(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type
    assert response.headers["msh-request-id"]
    assert response.headers["x-msh-trace-id"]
    message = error["message"]
    assert isinstance(message, str) and message
    return message


async def test_a_valid_request_is_accepted(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    sim, client = served
    response = await client.post(
        "/chat/completions", json=tool_step(assistant_with(), tool_result())
    )
    assert response.status_code == 200, response.text
    assert sim.last_request.ok


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "sim-key", "Basic sim-key"])
async def test_missing_or_wrong_key_is_401(
    served: tuple[GatewaySimulator, httpx.AsyncClient], header: str | None
):
    sim, client = served
    headers = {} if header is None else {"Authorization": header}
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=headers) as bare:
        response = await bare.post("/chat/completions", json=body())
    message = refused(response, 401, "invalid_authentication_error")
    assert "Invalid Authentication" in message
    assert sim.last_request.status == 401
    if header is not None:  # a foreign key never lands in the record
        assert sim.last_request.headers["authorization"] == "Bearer <redacted>"


async def test_models_endpoint_needs_the_key_too(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    async with httpx.AsyncClient(base_url=str(client.base_url)) as bare:
        refused(await bare.get("/models"), 401, "invalid_authentication_error")
    listed = (await client.get("/models")).json()
    assert [m["id"] for m in listed["data"]] == ["kimi-k2-6", "kimi-k2-5"]


async def test_unknown_model_is_404(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    response = await client.post("/chat/completions", json=body(model="kimi-k3"))
    assert "kimi-k3" in refused(response, 404, "resource_not_found_error")


async def test_unknown_path_and_wrong_method_answer_json(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    sim, client = served
    refused(await client.post("/completions", json=body()), 404, "resource_not_found_error")
    refused(await client.get("/chat/completions"), 405, "invalid_request_error")
    assert [r.status for r in sim.requests] == [404, 405]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_malformed_body_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], raw: bytes
):
    sim, client = served
    response = await client.post(
        "/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    refused(response, 400, "invalid_request_error")
    assert sim.last_request.body is None or not isinstance(sim.last_request.body, dict)
    assert sim.last_request.raw_body == raw


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"model": None}, "'model' is required"),
        ({"messages": []}, "'messages' is required"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "unknown role"),
        ({"messages": [{"role": "user", "content": 42}]}, "content must be"),
        ({"stream": "yes"}, "'stream' must be a boolean"),
        ({"max_tokens": 0}, "positive integer"),
        ({"tools": {"get_order": GET_ORDER}}, "'tools' must be an array"),
        ({"response_format": {"type": "yaml"}}, "not supported"),
    ],
)
async def test_malformed_fields_are_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], fields: dict[str, Any], fragment: str
):
    _, client = served
    response = await client.post("/chat/completions", json=body(**fields))
    assert fragment in refused(response, 400, "invalid_request_error")


async def test_image_input_is_refused(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    parts = [
        {"type": "text", "text": "看图"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    response = await client.post(
        "/chat/completions", json=body(messages=[{"role": "user", "content": parts}])
    )
    assert "image" in refused(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("model", "max_tokens", "ok"),
    [
        ("kimi-k2-6", 16384, True),
        ("kimi-k2-6", 16385, False),
        ("kimi-k2-5", 8192, True),
        ("kimi-k2-5", 9000, False),
    ],
)
async def test_max_tokens_over_the_cap_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], model: str, max_tokens: int, ok: bool
):
    _, client = served
    response = await client.post("/chat/completions", json=body(model=model, max_tokens=max_tokens))
    if ok:
        assert response.status_code == 200, response.text
    else:
        message = refused(response, 400, "invalid_request_error")
        assert str(max_tokens) in message and model in message


async def test_prompt_plus_max_tokens_over_the_window_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    long_text = "订单物流状态查询" * 21_250  # 170 000 CJK characters
    prompt = estimate_text(long_text)
    assert 131072 - 16384 < prompt <= 131072 - 4096  # the ranges the assertions rely on
    messages = [{"role": "user", "content": long_text}]

    over = await client.post("/chat/completions", json=body(messages=messages, max_tokens=16384))
    message = refused(over, 400, "invalid_request_error")
    assert "Your request exceeded model token limit: 131072" in message

    # an absent max_tokens counts as the model's cap ("model max")
    absent = await client.post("/chat/completions", json=body(messages=messages))
    assert "exceeded model token limit" in refused(absent, 400, "invalid_request_error")

    clamped = await client.post("/chat/completions", json=body(messages=messages, max_tokens=4096))
    assert clamped.status_code == 200, clamped.text

    # the 256K model takes the same prompt
    bigger = await client.post(
        "/chat/completions", json=body(model="kimi-k2-5", messages=messages, max_tokens=8192)
    )
    assert bigger.status_code == 200, bigger.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.6),
        ("top_p", 0.95),
        ("n", 1),
        ("presence_penalty", 0.0),
        ("frequency_penalty", 0.0),
        ("parallel_tool_calls", True),
        ("store", False),
        ("max_completion_tokens", 1024),
        ("reasoning_effort", "high"),
        ("seed", 42),
        ("user", "customer-42"),
    ],
)
async def test_sampling_and_undocumented_fields_are_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], field: str, value: Any
):
    _, client = served
    response = await client.post("/chat/completions", json=body(**{field: value}))
    assert f"'{field}'" in refused(response, 400, "invalid_request_error")


async def test_stream_options_is_accepted(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    response = await client.post(
        "/chat/completions", json=body(stream=True, stream_options={"include_usage": True})
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("choice", "ok"),
    [
        ("auto", True),
        ("none", True),
        ("required", False),
        ({"type": "function", "function": {"name": "get_order"}}, False),
    ],
)
async def test_tool_choice_other_than_auto_or_none_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], choice: Any, ok: bool
):
    _, client = served
    response = await client.post(
        "/chat/completions", json=body(tools=[GET_ORDER], tool_choice=choice)
    )
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert "tool_choice" in refused(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    "parameters",
    [
        {"type": "object", "properties": {"status": {"enum": ["paid", "shipped"]}}},
        {"type": "object", "properties": {"x": {"type": "array", "items": [{"type": "string"}]}}},
        {"type": "object", "properties": {"x": {"type": "string", "anyOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"required": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
    ],
)
async def test_tool_schema_outside_the_dialect_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], parameters: dict[str, Any]
):
    _, client = served
    tool = {"type": "function", "function": {"name": "get_order", "parameters": parameters}}
    response = await client.post("/chat/completions", json=body(tools=[tool]))
    message = refused(response, 400, "invalid_request_error")
    assert re.search(
        r"is not a valid moonshot flavored json schema, details: <At path '[^']*': .+>", message
    ), message


@pytest.mark.parametrize("name", ["1st_tool", "get order", "查询订单", "x" * 65])
async def test_bad_tool_name_is_400(served: tuple[GatewaySimulator, httpx.AsyncClient], name: str):
    _, client = served
    tool = {"type": "function", "function": {**GET_ORDER["function"], "name": name}}
    response = await client.post("/chat/completions", json=body(tools=[tool]))
    assert "tool name" in refused(response, 400, "invalid_request_error")


async def test_duplicate_tool_names_are_400(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    response = await client.post("/chat/completions", json=body(tools=[GET_ORDER, GET_ORDER]))
    assert "get_order is duplicated" in refused(response, 400, "invalid_request_error")


@pytest.mark.parametrize("reasoning", [None, "", 0])
async def test_tool_call_message_without_reasoning_content_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], reasoning: Any
):
    _, client = served
    assistant = assistant_with(reasoning_content=reasoning)
    if reasoning is None:
        del assistant["reasoning_content"]
    response = await client.post("/chat/completions", json=tool_step(assistant, tool_result()))
    message = refused(response, 400, "invalid_request_error")
    assert message == (
        "Invalid request: thinking is enabled but reasoning_content is missing in assistant "
        "tool call message at index 1"
    )


async def test_placeholder_reasoning_is_accepted(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    assistant = assistant_with(reasoning_content=" ", content=None)
    response = await client.post("/chat/completions", json=tool_step(assistant, tool_result()))
    assert response.status_code == 200, response.text


async def test_empty_content_beside_tool_calls_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    response = await client.post(
        "/chat/completions", json=tool_step(assistant_with(content=""), tool_result())
    )
    assert "must not be empty" in refused(response, 400, "invalid_request_error")


async def test_empty_tool_calls_array_is_400(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    response = await client.post("/chat/completions", json=tool_step(assistant_with(tool_calls=[])))
    assert "tool_calls" in refused(response, 400, "invalid_request_error")


async def test_tool_message_matching_no_call_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    response = await client.post(
        "/chat/completions", json=tool_step(assistant_with(), tool_result("get_order_0"))
    )
    message = refused(response, 400, "invalid_request_error")
    assert "tool_call_id get_order_0 is not found" in message

    stray = body(messages=[USER, tool_result()])  # a tool message after a user message
    refused(await client.post("/chat/completions", json=stray), 400, "invalid_request_error")


async def test_tool_call_not_followed_by_one_result_per_call_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    second = {**CALL, "id": "get_order:1"}
    assistant = assistant_with(tool_calls=[CALL, second])

    missing = await client.post("/chat/completions", json=tool_step(assistant, tool_result()))
    message = refused(missing, 400, "invalid_request_error")
    assert "did not have response messages: get_order:1" in message

    twice = await client.post(
        "/chat/completions", json=tool_step(assistant, tool_result(), tool_result())
    )
    assert "answered twice" in refused(twice, 400, "invalid_request_error")

    interrupted = body(messages=[USER, assistant, tool_result(), USER, tool_result("get_order:1")])
    refused(await client.post("/chat/completions", json=interrupted), 400, "invalid_request_error")

    unanswered = body(messages=[USER, assistant])
    refused(await client.post("/chat/completions", json=unanswered), 400, "invalid_request_error")

    both = await client.post(
        "/chat/completions",
        json=tool_step(assistant, tool_result("get_order:1"), tool_result("get_order:0")),
    )
    assert both.status_code == 200, both.text


async def test_duplicate_call_ids_in_one_message_are_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    assistant = assistant_with(tool_calls=[CALL, CALL])
    response = await client.post("/chat/completions", json=tool_step(assistant, tool_result()))
    assert "appears twice" in refused(response, 400, "invalid_request_error")


async def test_json_schema_output_only_on_k2_6(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    schema_format = {
        "type": "json_schema",
        "json_schema": {"name": "order", "schema": {"type": "object", "properties": {}}},
    }
    ok = await client.post("/chat/completions", json=body(response_format=schema_format))
    assert ok.status_code == 200, ok.text
    refused_k25 = await client.post(
        "/chat/completions", json=body(model="kimi-k2-5", response_format=schema_format)
    )
    assert "json_object" in refused(refused_k25, 400, "invalid_request_error")
    json_mode = await client.post(
        "/chat/completions",
        json=body(model="kimi-k2-5", response_format={"type": "json_object"}),
    )
    assert json_mode.status_code == 200, json_mode.text


async def test_refused_requests_are_recorded(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    sim, client = served
    await client.post("/chat/completions", json=body(temperature=0.3))
    await client.post("/chat/completions", json=body())
    first, second = sim.requests
    assert (first.status, first.error_type, first.model) == (
        400,
        "invalid_request_error",
        "kimi-k2-6",
    )
    assert first.body["temperature"] == 0.3
    assert "temperature" in (first.error_message or "")
    assert second.ok and second.error_type is None
    assert first.headers["authorization"] == "Bearer sim-key"
    assert first.request_id and first.request_id != second.request_id
