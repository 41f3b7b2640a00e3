"""The refusals: everything Moonshot answers with a 4xx, checked the way Moonshot checks it.

Each check raises `Refusal(status, type, message)`; the app turns it into Moonshot's body
`{"error": {"message": ..., "type": ...}}`. Messages start with "Invalid request: " like
Moonshot's and quote Moonshot's wording where it is known (docs/wire/kimi.md), so a client's error
mapping can be tested against the simulator.

Decisions where the documentation is silent (kept strict, so client bugs surface here):
- Only the documented top-level fields are accepted (`model`, `messages`, `max_tokens`,
  `tools`, `tool_choice`, `response_format`, `stream`) plus `stream_options`; any other field
  is refused, sampling fields with their own message.
- An absent `max_tokens` counts as the model's cap (the gateway's documented default, "model
  max"), so prompt + cap must fit the window: a client that sends long prompts must clamp.
- The window check uses `kimi_agent.tokens`' estimate, with no margin.
- `response_format` `json_schema` is refused on models whose profile only has JSON mode
  (kimi-k2-5); `json_object` and `text` are accepted everywhere.
- A tool without `parameters` is accepted (a function of no arguments); `tool_calls: []`
  is refused; image parts are refused (neither model has vision).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kimi_agent._tokens import estimate_tools, estimate_wire_messages
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.tooling._dialect import check_moonshot, check_tool_name

__all__ = [
    "ALLOWED_FIELDS",
    "SAMPLING_FIELDS",
    "CheckedRequest",
    "Refusal",
    "check_auth",
    "check_request",
    "parse_body",
]

INVALID = "invalid_request_error"
ALLOWED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "stream_options",
    }
)
SAMPLING_FIELDS = frozenset({"temperature", "top_p", "n", "presence_penalty", "frequency_penalty"})
_ROLES = ("system", "user", "assistant", "tool")


class Refusal(Exception):
    """An error answer: HTTP status, Moonshot error `type` and message, extra headers."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type}}


def _bad(message: str) -> Refusal:
    return Refusal(400, INVALID, f"Invalid request: {message}")


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """A request that passed every check, with the figures the reply needs."""

    model: str
    profile: ModelProfile
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    response_format: dict[str, Any] | None
    prompt_tokens: int


def check_auth(authorization: str | None, api_key: str) -> None:
    """401 unless the header is `Bearer <api_key>`."""
    if not authorization:
        raise Refusal(
            401,
            "invalid_authentication_error",
            "Invalid Authentication: no API key was given (send 'Authorization: Bearer <key>')",
        )
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or key.strip() != api_key:
        raise Refusal(401, "invalid_authentication_error", "Invalid Authentication")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    return body


def check_request(body: dict[str, Any], profiles: Mapping[str, ModelProfile]) -> CheckedRequest:
    """Every check of a chat-completions body, in the order a reader would expect."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a string")
    profile = profiles.get(model)
    if profile is None:
        raise Refusal(
            404,
            "resource_not_found_error",
            f"Not found the model {model} or Permission denied",
        )
    _check_fields(body, model)
    messages = _check_messages(body.get("messages"), profile)
    _check_tool_choice(body)
    tools = _check_tools(body.get("tools"))
    response_format = _check_response_format(body.get("response_format"), profile)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise _bad(f"'max_tokens' must be a positive integer, got {max_tokens!r}")
    if max_tokens is not None and max_tokens > profile.max_output:
        raise _bad(
            f"max_tokens {max_tokens} exceeds the maximum output of {model}: {profile.max_output}"
        )
    prompt_tokens = estimate_wire_messages(messages) + estimate_tools(tools)
    budget = max_tokens if max_tokens is not None else profile.max_output
    if prompt_tokens + budget > profile.context_window:
        raise _bad(f"Your request exceeded model token limit: {profile.context_window}")
    return CheckedRequest(
        model=model,
        profile=profile,
        body=body,
        messages=messages,
        tools=tools,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        response_format=response_format,
        prompt_tokens=prompt_tokens,
    )


def _check_fields(body: dict[str, Any], model: str) -> None:
    for key in body:
        if key in SAMPLING_FIELDS:
            raise _bad(
                f"'{key}' is not allowed: the sampling parameters of {model} are fixed by the "
                "model, remove it from the request"
            )
        if key not in ALLOWED_FIELDS:
            raise _bad(
                f"'{key}' is not a supported parameter; the gateway accepts only "
                + ", ".join(sorted(ALLOWED_FIELDS))
            )


def _check_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("auto", "none"):
        raise _bad(
            f"tool_choice {json.dumps(choice, ensure_ascii=False)} is incompatible with "
            'thinking enabled; only "auto" or "none" are supported'
        )


def _check_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _bad(f"tools[{i}] must be an object with type 'function'")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _bad(f"tools[{i}].function must be an object with a string 'name'")
        name: str = function["name"]
        problem = check_tool_name(name)
        if problem is not None:
            raise _bad(f"tools[{i}]: {problem}")
        if name in seen:
            raise _bad(f"function name {name} is duplicated")
        seen.add(name)
        if "parameters" in function:
            problems = check_moonshot(function["parameters"])
            if problems:
                raise _bad(
                    f"tools.function.parameters of function {name} is not a valid moonshot "
                    f"flavored json schema, details: <{'; '.join(problems)}>"
                )
    return tools


def _check_response_format(value: Any, profile: ModelProfile) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("'response_format' must be an object")
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return value
    if kind == "json_schema":
        if profile.structured_output != "json_schema":
            raise _bad(
                f"response_format type 'json_schema' is not supported by {profile.name}, "
                'which only has JSON mode: use {"type": "json_object"}'
            )
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise _bad("response_format.json_schema must be an object with a 'schema' object")
        return value
    raise _bad(f"response_format type {kind!r} is not supported")


def _check_messages(value: Any, profile: ModelProfile) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _bad("'messages' is required and must be a non-empty array")
    messages: list[dict[str, Any]] = value
    pending: dict[str, bool] | None = None  # call ids of the open tool step → answered?
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}] must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise _bad(f"messages[{i}]: unknown role {role!r}, expected one of {', '.join(_ROLES)}")
        if role == "tool":
            pending = _check_tool_message(message, i, pending)
            continue
        if pending is not None:
            _unanswered(pending)
        pending = None
        if role == "assistant":
            pending = _check_assistant(message, i)
        else:
            _check_content(message, i, profile)
    if pending is not None:
        _unanswered(pending)
    return messages


def _check_content(message: dict[str, Any], i: int, profile: ModelProfile) -> None:
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"messages[{i}].content must be a string or an array of content parts")
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind in ("image_url", "input_image", "image"):
            raise _bad(f"{profile.name} does not support image input (messages[{i}])")
        raise _bad(f"messages[{i}].content has an invalid part: {part!r}")


def _check_assistant(message: dict[str, Any], i: int) -> dict[str, bool] | None:
    calls = message.get("tool_calls")
    if calls is None:
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content must be a string, an array or null")
        return None
    if not isinstance(calls, list) or not calls:
        raise _bad(f"messages[{i}].tool_calls must be a non-empty array (or be left out)")
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str) or reasoning == "":
        raise _bad(
            "thinking is enabled but reasoning_content is missing in assistant tool call "
            f"message at index {i}"
        )
    content = message.get("content")
    if content == "" or content == []:
        raise _bad(
            f"the message at position {i} with role 'assistant' must not be empty: leave "
            "'content' out of a tool-call message that has no text"
        )
    ids: dict[str, bool] = {}
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        call_id = call.get("id") if isinstance(call, dict) else None
        if (
            not isinstance(call_id, str)
            or not call_id
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise _bad(
                f"messages[{i}].tool_calls[{j}] must have a string 'id', type 'function' and "
                "'function' with string 'name' and 'arguments'"
            )
        if call.get("type", "function") != "function":
            raise _bad(f"messages[{i}].tool_calls[{j}].type must be 'function'")
        if call_id in ids:
            raise _bad(f"tool call id {call_id} appears twice in messages[{i}]")
        ids[call_id] = False
    return ids


def _check_tool_message(
    message: dict[str, Any], i: int, pending: dict[str, bool] | None
) -> dict[str, bool]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise _bad(f"messages[{i}]: a tool message needs a string 'tool_call_id'")
    content = message.get("content")
    if not isinstance(content, str | list):
        raise _bad(f"messages[{i}]: a tool message needs 'content'")
    if pending is None or call_id not in pending:
        raise _bad(
            f"tool_call_id {call_id} is not found: the tool message at index {i} answers no "
            "call of the previous assistant message"
        )
    if pending[call_id]:
        raise _bad(f"tool_call_id {call_id} is answered twice (messages[{i}])")
    pending[call_id] = True
    return pending


def _unanswered(pending: dict[str, bool]) -> None:
    missing = [call_id for call_id, answered in pending.items() if not answered]
    if missing:
        raise _bad(
            "an assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(missing)}"
        )
