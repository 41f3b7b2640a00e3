"""The chat-completions protocol as Kimi speaks it (the facts are in docs/wire/kimi.md).

Lenient on input: unknown fields are kept, `content` null or "" mean the same, usage is read
from wherever Moonshot put it. Exact on output: `to_wire()` emits only the fields the gateway
documents, omits empty `content` beside tool calls, and always gives an assistant tool-call
message its `reasoning_content` (`" "` when the model sent none), because Moonshot refuses the
history otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    field_validator,
    model_validator,
)

__all__ = [
    "AssistantMessage",
    "CallInfo",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatRequest",
    "Choice",
    "ChunkChoice",
    "ChunkDelta",
    "ErrorBody",
    "FunctionCall",
    "Message",
    "SystemMessage",
    "ToolCall",
    "ToolCallDelta",
    "ToolMessage",
    "Usage",
    "UserMessage",
    "dumps",
    "parse_message",
    "parse_messages",
]

REASONING_PLACEHOLDER = " "
"""Sent as `reasoning_content` when an assistant tool-call message has none: "" is refused."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> str:
    """JSON as it goes on the wire: CJK kept as is, no spaces, stable key order of dicts.

    A lone surrogate (text cut inside a UTF-16 pair, e.g. from a browser) cannot be encoded
    as UTF-8; it is replaced by U+FFFD here, at the boundary, so encoding the result never
    raises `UnicodeEncodeError`."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii() and _LONE_SURROGATE.search(text) is not None:
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the gateway said about one model call besides the reply itself.

    `request_id` / `trace_id`: the ids to quote in a support ticket (the first of
    `Msh-Request-Id`, `X-Request-Id`, ... and of `X-Msh-Trace-Id`, ..., else the body's `id`);
    `request_ids` holds every id header and the body id. `rate_limit_*` are the tightest USD
    spend bucket of the key (`X-RateLimit-Limit`, `-Remaining`, `-Reset`, the reset as a UTC
    datetime), `quota_remaining_credits` / `org_quota_remaining_credits` the key's and the
    organisation's remaining credits (1 USD = 1,000,000). None when the header was absent.
    """

    model: str
    status: int | None = None
    stream: bool = False
    attempts: int = 1
    latency_s: float | None = None
    request_id: str | None = None
    trace_id: str | None = None
    request_ids: dict[str, str] = field(default_factory=dict)
    rate_limit_limit: float | None = None
    rate_limit_remaining: float | None = None
    rate_limit_reset: datetime | None = None
    quota_remaining_credits: float | None = None
    org_quota_remaining_credits: float | None = None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- messages


class FunctionCall(_Lenient):
    name: str
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_as_string(cls, value: Any) -> Any:
        if value is None or value == "":
            return "{}"
        if isinstance(value, dict | list):  # some OpenAI-compatible servers send objects
            return dumps(value)
        return value


class ToolCall(_Lenient):
    """One call of a tool by the model. `id` is opaque: echoed byte for byte, never parsed."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.function.name, "arguments": self.function.arguments},
        }


class SystemMessage(_Lenient):
    role: Literal["system"] = "system"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"role": "system", "content": self.content}


class UserMessage(_Lenient):
    role: Literal["user"] = "user"
    content: str | list[dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        return {"role": "user", "content": self.content}


class AssistantMessage(_Lenient):
    """A reply of the model. `model` records which model answered; it never goes on the wire."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    model: str | None = None

    @field_validator("content", "reasoning_content", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _no_calls_is_none(cls, value: Any) -> Any:
        return None if value == [] else value

    @property
    def text(self) -> str:
        return self.content or ""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"role": "assistant"}
        if self.tool_calls:
            if self.content:
                wire["content"] = self.content
            wire["reasoning_content"] = self.reasoning_content or REASONING_PLACEHOLDER
            wire["tool_calls"] = [call.to_wire() for call in self.tool_calls]
        else:
            wire["content"] = self.content or ""
            if self.reasoning_content:
                wire["reasoning_content"] = self.reasoning_content
        return wire


class ToolMessage(_Lenient):
    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str
    name: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "role": "tool",
            "tool_call_id": self.tool_call_id,
            "content": self.content,
        }
        if self.name is not None:
            wire["name"] = self.name
        return wire


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
_message_adapter: TypeAdapter[Message] = TypeAdapter(Message)


def parse_message(data: Any) -> Message:
    """A message from a dict (e.g. a stored session row) or from a message object."""
    if isinstance(data, SystemMessage | UserMessage | AssistantMessage | ToolMessage):
        return data
    return _message_adapter.validate_python(data)


def parse_messages(data: Any) -> list[Message]:
    return [parse_message(item) for item in data]


# --------------------------------------------------------------------------- request


class ChatRequest(BaseModel):
    """A chat-completions request. Only the documented fields exist: a sampling field such as
    `temperature` is refused here, because Moonshot would refuse it on the wire."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Message]
    max_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none"] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        return [parse_message(item) for item in value]

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message.to_wire() for message in self.messages],
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.tools:
            body["tools"] = self.tools
        if self.tool_choice is not None:
            body["tool_choice"] = self.tool_choice
        if self.response_format is not None:
            body["response_format"] = self.response_format
        if self.stream:
            body["stream"] = True
        return body

    def to_json(self) -> str:
        return dumps(self.to_wire())


# --------------------------------------------------------------------------- response


class Usage(_Lenient):
    """Token counts. `prompt_tokens` includes the cached ones; `completion_tokens` the reasoning."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens_field: int | None = Field(default=None, alias="cached_tokens")
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None

    @property
    def cached_tokens(self) -> int:
        if self.cached_tokens_field is not None:
            return self.cached_tokens_field
        details = self.prompt_tokens_details or {}
        value = details.get("cached_tokens")
        return value if isinstance(value, int) else 0

    @property
    def reasoning_tokens(self) -> int:
        details = self.completion_tokens_details or {}
        value = details.get("reasoning_tokens")
        return value if isinstance(value, int) else 0


class Choice(_Lenient):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = None
    usage: Usage | None = None


class ChatCompletion(_Lenient):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice]
    usage: Usage | None = None
    _call_info: CallInfo | None = PrivateAttr(default=None)

    @property
    def call_info(self) -> CallInfo | None:
        """Ids, rate-limit and quota headers of the call that gave this reply (set by the
        gateway client; never serialised)."""
        return self._call_info

    @model_validator(mode="after")
    def _usage_from_choice(self) -> ChatCompletion:
        # Moonshot puts usage in choices[0].usage in streams; read both places.
        if self.usage is None and self.choices and self.choices[0].usage is not None:
            self.usage = self.choices[0].usage
        return self

    @property
    def message(self) -> AssistantMessage:
        return self.choices[0].message

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason


class FunctionDelta(_Lenient):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Lenient):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class ChunkDelta(_Lenient):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Lenient):
    index: int = 0
    delta: ChunkDelta = Field(default_factory=ChunkDelta)
    finish_reason: str | None = None
    usage: Usage | None = None


class ChatCompletionChunk(_Lenient):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None


class ErrorBody(_Lenient):
    """`{"error": {"message": ..., "type": ...}}` as Moonshot sends it."""

    message: str = ""
    type: str | None = None
    code: str | int | None = None
