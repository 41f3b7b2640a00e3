"""The simulator refuses what Moonshot refuses, with Moonshot's status, error type and message.

Every test talks to a real loopback server with raw httpx requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kimi_agent.testing import GatewaySimulator
from kimi_agent.testing._tokens import count_text

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


def refused(response: httpx.Response, status: int, error_type: str, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error.get("code") == code
    assert response.headers["x-request-id"]
    assert response.headers["msh-request-id"]
    assert response.headers["x-msh-trace-id"]
    assert response.headers["x-ratelimit-remaining"]
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
    message = refused(response, 401, "invalid_authentication_error", "invalid_api_key")
    assert "Invalid Authentication" in message
    assert sim.last_request.status == 401
    if header is not None:  # a foreign key never lands in the record
        assert sim.last_request.headers["authorization"] == "Bearer <redacted>"


async def test_models_endpoint_needs_the_key_too(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    async with httpx.AsyncClient(base_url=str(client.base_url)) as bare:
        refused(await bare.get("/models"), 401, "invalid_authentication_error", "invalid_api_key")
    listed = (await client.get("/models")).json()
    assert [m["id"] for m in listed["data"]] == ["kimi-k2-6", "kimi-k2-5"]


async def test_unknown_model_is_400_model_not_found(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    response = await client.post("/chat/completions", json=body(model="kimi-k3"))
    message = refused(response, 400, "invalid_request_error", "model_not_found")
    assert message.startswith("Invalid request: ") and "kimi-k3" in message


async def test_unknown_path_and_wrong_method_answer_json(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    sim, client = served
    missing = await client.post("/completions", json=body())
    refused(missing, 404, "resource_not_found_error", "not_found")
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
    refused(response, 400, "invalid_request_error", "invalid_param")
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
    error = response.json()["error"]
    assert fragment in refused(response, 400, "invalid_request_error", error.get("code"))
    assert error.get("code") in (None, "invalid_param")


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
    long_text = "订单物流状态查询" * 25_000  # 200 000 CJK characters
    prompt = count_text(long_text) + 4  # the simulator's own count, with a message's framing
    assert 131072 - 16384 < prompt <= 131072 - 4096  # the ranges the assertions rely on
    messages = [{"role": "user", "content": long_text}]

    over = await client.post("/chat/completions", json=body(messages=messages, max_tokens=16384))
    message = refused(over, 400, "invalid_request_error", "context_length_exceeded")
    assert message == (
        "Invalid request: Your request exceeded model token limit: 131072 "
        f"(requested: {prompt + 16384})"
    )

    # an absent max_tokens counts as the model's cap ("model max")
    absent = await client.post("/chat/completions", json=body(messages=messages))
    message = refused(absent, 400, "invalid_request_error", "context_length_exceeded")
    assert "exceeded model token limit" in message

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
        ("temperature", 1),
        ("temperature", 1.0),
        ("top_p", 0.95),
        ("n", 1),
        ("presence_penalty", 0),
        ("frequency_penalty", 0.0),
        ("stop", "。"),
        ("stop", ["\n\n", "用户："]),
        ("seed", 42),
        ("user", "customer-42"),
    ],
)
async def test_documented_fields_at_their_fixed_values_are_accepted(
    served: tuple[GatewaySimulator, httpx.AsyncClient], field: str, value: Any
):
    _, client = served
    response = await client.post("/chat/completions", json=body(**{field: value}))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 0.6, "invalid temperature: only 1 is allowed for this model"),
        ("temperature", "1", "invalid temperature: only 1 is allowed for this model"),
        ("top_p", 1.0, "invalid top_p: only 0.95 is allowed for this model"),
        ("n", 2, "invalid n: only 1 is allowed for this model"),
        ("presence_penalty", 0.5, "invalid presence_penalty: only 0 is allowed for this model"),
    ],
)
async def test_sampling_values_moonshot_fixes_are_400_in_its_words(
    served: tuple[GatewaySimulator, httpx.AsyncClient], field: str, value: Any, message: str
):
    _, client = served
    response = await client.post("/chat/completions", json=body(**{field: value}))
    assert refused(response, 400, "invalid_request_error") == message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("parallel_tool_calls", True),
        ("store", False),
        ("max_completion_tokens", 1024),
        ("reasoning_effort", "high"),
        ("thinking", {"type": "disabled"}),
        ("seed", "42"),
        ("stop", 7),
    ],
)
async def test_undocumented_fields_and_wrong_types_are_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], field: str, value: Any
):
    _, client = served
    response = await client.post("/chat/completions", json=body(**{field: value}))
    assert f"'{field}'" in refused(response, 400, "invalid_request_error", "invalid_param")


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
        word = choice if isinstance(choice, str) else "specified"
        assert refused(response, 400, "invalid_request_error") == (
            f"tool_choice '{word}' is incompatible with thinking enabled"
        )


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize(
    ("parameters", "details"),
    [
        (obj(status={"enum": ["paid", "shipped"]}), "At path 'properties.status': type is not"),
        (obj(x={"type": "array", "items": [{"type": "string"}]}), "items must be an object"),
        (obj(x={"type": "string", "anyOf": [{"type": "string"}]}), "when using anyOf, type"),
        ({**obj(a={"type": "string"}), "required": ["b"]}, "required property 'b' is not"),
        (obj(required={"type": "boolean"}), "property name 'required' is reserved"),
        (obj(flag={"type": "boolean", "enum": ["yes"]}), "enum value (yes) does not match"),
        (obj(n={"type": "integer", "enum": ["1"]}), "At path 'properties.n.enum': not a valid"),
        (obj(x={"type": "array", "enum": ["a"]}), "does not match any type in [array]"),
        (obj(price={"type": "float"}), "At path 'properties.price': invalid type"),
        (obj(x={"type": ["array", "null"], "items": {}}), "not allowed in combination with"),
        (obj(o={"$ref": "#/$defs/Missing"}), "$defs not found for reference"),
    ],
)
async def test_tool_schema_walle_refuses_is_400_in_its_words(
    served: tuple[GatewaySimulator, httpx.AsyncClient], parameters: dict[str, Any], details: str
):
    _, client = served
    tool = {"type": "function", "function": {"name": "get_order", "parameters": parameters}}
    response = await client.post("/chat/completions", json=body(tools=[tool]))
    message = refused(response, 400, "invalid_request_error")
    assert message.startswith(
        "Invalid request: tools.function.parameters of function get_order is not a valid "
        "moonshot flavored json schema, details: <At path '"
    ), message
    assert details in message and message.endswith(">")


@pytest.mark.parametrize(
    "parameters",
    [
        {
            "type": "object",
            "title": "GetOrderArgs",
            "properties": {"o": {"$ref": "#/$defs/O"}},
            "$defs": {"O": {"type": "string", "title": "O"}},
            "required": ["o"],
        },
        obj(when={"type": "string", "format": "date"}),
        obj(kind={"const": "a"}, other={}),
        {"type": "array", "items": {"type": "string"}},
        {},
    ],
)
async def test_tool_schema_walle_strict_accepts_is_accepted(
    served: tuple[GatewaySimulator, httpx.AsyncClient], parameters: dict[str, Any]
):
    _, client = served
    tool = {"type": "function", "function": {"name": "get_order", "parameters": parameters}}
    response = await client.post("/chat/completions", json=body(tools=[tool]))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", ["1st_tool", "get order", "查询订单", "x" * 65])
async def test_bad_tool_name_is_400(served: tuple[GatewaySimulator, httpx.AsyncClient], name: str):
    _, client = served
    tool = {"type": "function", "function": {**GET_ORDER["function"], "name": name}}
    response = await client.post("/chat/completions", json=body(tools=[tool]))
    assert f"function name {name} is invalid" in refused(response, 400, "invalid_request_error")


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
        "thinking is enabled but reasoning_content is missing in assistant "
        "tool call message at index 1"
    )


async def test_placeholder_reasoning_is_accepted(
    served: tuple[GatewaySimulator, httpx.AsyncClient],
):
    _, client = served
    assistant = assistant_with(reasoning_content=" ", content=None)
    response = await client.post("/chat/completions", json=tool_step(assistant, tool_result()))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("content", ["", None, "我先查一下。"])
async def test_empty_or_null_content_beside_tool_calls_is_accepted(
    served: tuple[GatewaySimulator, httpx.AsyncClient], content: str | None
):
    _, client = served
    response = await client.post(
        "/chat/completions", json=tool_step(assistant_with(content=content), tool_result())
    )
    assert response.status_code == 200, response.text


async def test_an_empty_text_part_is_400(served: tuple[GatewaySimulator, httpx.AsyncClient]):
    _, client = served
    empty_part = [{"type": "text", "text": ""}]
    beside_calls = tool_step(assistant_with(content=empty_part), tool_result())
    message = refused(
        await client.post("/chat/completions", json=beside_calls), 400, "invalid_request_error"
    )
    assert "text content part must not be empty" in message
    user = body(messages=[{"role": "user", "content": empty_part}])
    refused(await client.post("/chat/completions", json=user), 400, "invalid_request_error")


@pytest.mark.parametrize(
    "assistant",
    [
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": None, "reasoning_content": "想了想"},
        {"role": "assistant", "reasoning_content": "想了想"},
        {"role": "assistant", "content": "", "tool_calls": []},
    ],
)
async def test_an_assistant_message_with_neither_text_nor_calls_is_400(
    served: tuple[GatewaySimulator, httpx.AsyncClient], assistant: dict[str, Any]
):
    _, client = served
    messages = [USER, assistant, {"role": "user", "content": "还在吗？"}]
    response = await client.post("/chat/completions", json=body(messages=messages))
    message = refused(response, 400, "invalid_request_error")
    assert message == (
        "Invalid request: the message at position 1 with role 'assistant' must not be empty"
    )


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
