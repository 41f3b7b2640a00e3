"""Wire models: lenient on input, exact on output (docs/wire/kimi.md)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kimi_agent.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatRequest,
    ToolCall,
    Usage,
    dumps,
    parse_message,
)


def test_request_refuses_sampling_fields_before_they_reach_the_wire() -> None:
    for field in ("temperature", "top_p", "n", "presence_penalty", "parallel_tool_calls"):
        with pytest.raises(ValidationError, match=field):
            ChatRequest.model_validate(
                {"model": "kimi-k2-6", "messages": [{"role": "user", "content": "你好"}],
                 field: 1}
            )


def test_request_refuses_tool_choice_moonshot_rejects() -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate({"model": "kimi-k2-6", "messages": [],
                                    "tool_choice": "required"})


def test_request_wire_has_only_documented_fields_and_keeps_cjk() -> None:
    request = ChatRequest(model="kimi-k2-6", messages=[{"role": "user", "content": "你好，世界"}])
    assert request.to_wire() == {"model": "kimi-k2-6",
                                 "messages": [{"role": "user", "content": "你好，世界"}]}
    assert "你好，世界" in request.to_json()


@pytest.mark.parametrize("content", [None, ""])
def test_assistant_tool_call_message_wire_form(content: str | None) -> None:
    message = parse_message({
        "role": "assistant", "content": content, "reasoning_content": "",
        "tool_calls": [{"id": "functions.add:0", "index": 0, "type": "function",
                        "function": {"name": "add", "arguments": '{"a":1}'}}],
        "unknown_field": "kept",
    })
    assert isinstance(message, AssistantMessage)
    wire = message.to_wire()
    assert "content" not in wire
    assert wire["reasoning_content"] == " ", "'' is refused by Moonshot: send a space"
    assert wire["tool_calls"][0] == {"id": "functions.add:0", "type": "function",
                                     "function": {"name": "add", "arguments": '{"a":1}'}}
    assert message.model_extra == {"unknown_field": "kept"}


def test_assistant_text_reasoning_is_kept_and_text_beside_calls_is_sent() -> None:
    message = AssistantMessage(content="我来查一下", reasoning_content="先查订单",
                               tool_calls=[ToolCall.model_validate(
                                   {"id": "x", "function": {"name": "f", "arguments": None}})])
    wire = message.to_wire()
    assert wire["content"] == "我来查一下"
    assert wire["reasoning_content"] == "先查订单"
    assert wire["tool_calls"][0]["function"]["arguments"] == "{}"
    assert "model" not in wire


def test_model_that_answered_is_kept_but_never_sent() -> None:
    message = AssistantMessage(content="好", model="kimi-k2-5")
    assert parse_message(message.model_dump()).model == "kimi-k2-5"  # type: ignore[union-attr]
    assert message.to_wire() == {"role": "assistant", "content": "好"}


def test_usage_cached_tokens_precedence() -> None:
    assert Usage.model_validate({"cached_tokens": 5,
                                 "prompt_tokens_details": {"cached_tokens": 9}}).cached_tokens == 5
    assert Usage.model_validate({"prompt_tokens_details": {"cached_tokens": 9}}).cached_tokens == 9
    assert Usage().cached_tokens == 0
    usage = Usage.model_validate({"completion_tokens_details": {"reasoning_tokens": 7}})
    assert usage.reasoning_tokens == 7


def test_completion_reads_usage_from_choice_when_top_level_missing() -> None:
    completion = ChatCompletion.model_validate({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "嗯"},
                     "finish_reason": "stop", "usage": {"prompt_tokens": 3}}]})
    assert completion.usage is not None and completion.usage.prompt_tokens == 3


@given(st.text())
def test_any_text_survives_the_wire_unchanged(text: str) -> None:
    request = ChatRequest(model="kimi-k2-6", messages=[{"role": "user", "content": text}])
    assert json.loads(request.to_json())["messages"][0]["content"] == text
    assert dumps(text) == json.dumps(text, ensure_ascii=False)
