"""The refusals: everything the gateway (or Moonshot behind it) answers with a 4xx.

Each check raises a `Refusal`; the app turns it into the gateway's envelope. Sources:
docs/wire/gateway.md (the gateway's pages: fields, codes, auth), docs/wire/kimi.md and
Moonshot's model parameter reference (fixed sampling values, `tool_choice`, the token
limit), and the oracle of Moonshot's schema validator in `_walle.py` (tool schemas, at
walle's `strict` level).

Decisions where the documentation is silent (kept strict, so client bugs surface here):
- The gateway's documented fields are accepted; the sampling fields only at the value
  Moonshot fixes for its thinking models (`temperature` 1, `top_p` 0.95, `n` 1, the
  penalties 0); `stream_options` is accepted as Moonshot takes it. Any other field
  (`parallel_tool_calls`, `max_completion_tokens`, `reasoning_effort`, `thinking`, …) is
  refused, so a client that sends what the gateway does not document finds out here.
- An absent `max_tokens` counts as the model's cap, so prompt + cap must fit the window.
- The window check uses the simulator's own token count (`_tokens.py`), not the client's.
- `response_format` `json_schema` is refused on models with JSON mode only (kimi-k2-5); its
  schema is judged by walle like a tool's.
- Tool names must match `^[A-Za-z_][A-Za-z0-9_-]{0,63}$`; image parts are refused (neither
  model has vision).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kimi_agent.models import ModelProfile

from ._messages import check_messages
from ._refusal import INVALID, Refusal, bad
from ._tokens import count_messages, count_tools
from ._walle import validate as walle_validate

__all__ = [
    "ALLOWED_FIELDS",
    "FIXED_SAMPLING",
    "TOOL_NAME",
    "CheckedRequest",
    "Refusal",
    "api_key_of",
    "check_auth",
    "check_request",
    "parse_body",
]

FIXED_SAMPLING: dict[str, float] = {
    "temperature": 1.0,
    "top_p": 0.95,
    "n": 1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
"""Moonshot's fixed values for kimi-k2.5 / k2.6 with thinking on; any other value is a 400."""
ALLOWED_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "tools", "tool_choice", "response_format", "stream"}
    | {"stop", "seed", "user", "stream_options"}
    | set(FIXED_SAMPLING)
)
TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


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


def api_key_of(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: `x-api-key` wins over `Authorization: Bearer`
    (docs/wire/gateway.md)."""
    key = headers.get("x-api-key")
    if key is not None and key.strip():
        return key.strip()
    authorization = headers.get("authorization")
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else ""


def check_auth(headers: Mapping[str, str], api_key: str) -> None:
    """401 `invalid_api_key` unless the request carries `api_key`."""
    key = api_key_of(headers)
    if key is None:
        raise Refusal(
            401,
            "invalid_authentication_error",
            "Invalid Authentication: no API key was given (send 'Authorization: Bearer <key>' "
            "or 'x-api-key: <key>')",
            code="invalid_api_key",
        )
    if key != api_key:
        raise Refusal(
            401, "invalid_authentication_error", "Invalid Authentication", code="invalid_api_key"
        )


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400 `invalid_param`."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"the request body is not valid JSON: {exc}", code="invalid_param") from None
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", code="invalid_param")
    return body


def check_request(body: dict[str, Any], profiles: Mapping[str, ModelProfile]) -> CheckedRequest:
    """Every check of a chat-completions body, in the order a reader would expect."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required and must be a string", code="invalid_param")
    profile = profiles.get(model)
    if profile is None:
        raise Refusal(
            400,
            INVALID,
            f"Invalid request: the model {model} does not exist or is not available "
            f"(models: {', '.join(profiles)})",
            code="model_not_found",
        )
    _check_fields(body)
    messages = check_messages(body.get("messages"), profile)
    _check_tool_choice(body)
    tools = _check_tools(body.get("tools"))
    response_format = _check_response_format(body.get("response_format"), profile)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be a boolean", code="invalid_param")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise bad(
            f"'max_tokens' must be a positive integer, got {max_tokens!r}", code="invalid_param"
        )
    if max_tokens is not None and max_tokens > profile.max_output:
        raise bad(
            f"max_tokens {max_tokens} exceeds the maximum output of {model}: {profile.max_output}"
        )
    prompt_tokens = count_messages(messages) + count_tools(tools)
    budget = max_tokens if max_tokens is not None else profile.max_output
    if prompt_tokens + budget > profile.context_window:
        raise bad(
            f"Your request exceeded model token limit: {profile.context_window} "
            f"(requested: {prompt_tokens + budget})",
            code="context_length_exceeded",
        )
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


def _check_fields(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in FIXED_SAMPLING:
            fixed = FIXED_SAMPLING[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value != fixed:
                shown = int(fixed) if float(fixed).is_integer() else fixed
                raise bad(f"invalid {key}: only {shown} is allowed for this model", prefix=False)
        elif key not in ALLOWED_FIELDS:
            raise bad(
                f"'{key}' is not a supported parameter; the gateway accepts "
                + ", ".join(sorted(ALLOWED_FIELDS)),
                code="invalid_param",
            )
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise bad("'stop' must be a string or an array of strings", code="invalid_param")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise bad("'seed' must be an integer", code="invalid_param")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("'user' must be a string", code="invalid_param")


def _check_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none"):
        return
    word = choice if isinstance(choice, str) else "specified"
    raise bad(f"tool_choice '{word}' is incompatible with thinking enabled", prefix=False)


def _schema_problem(schema: Any, where: str) -> None:
    problem = walle_validate(schema, "strict")
    if problem is not None:
        raise bad(f"{where} is not a valid moonshot flavored json schema, details: <{problem}>")


def _check_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("'tools' must be an array", code="invalid_param")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise bad(f"tools[{i}] must be an object with type 'function'")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad(f"tools[{i}].function must be an object with a string 'name'")
        name: str = function["name"]
        if not TOOL_NAME.match(name):
            raise bad(
                f"function name {name} is invalid, must match {TOOL_NAME.pattern} (letters, "
                "digits, underscores and dashes, not starting with a digit, at most 64)"
            )
        if name in seen:
            raise bad(f"function name {name} is duplicated")
        seen.add(name)
        if "parameters" in function:
            _schema_problem(function["parameters"], f"tools.function.parameters of function {name}")
    return tools


def _check_response_format(value: Any, profile: ModelProfile) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad("'response_format' must be an object", code="invalid_param")
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return value
    if kind == "json_schema":
        if profile.structured_output != "json_schema":
            raise bad(
                f"response_format type 'json_schema' is not supported by {profile.name}, "
                'which only has JSON mode: use {"type": "json_object"}'
            )
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise bad("response_format.json_schema must be an object with a 'schema' object")
        _schema_problem(spec["schema"], "response_format.json_schema.schema")
        return value
    raise bad(f"response_format type {kind!r} is not supported")
