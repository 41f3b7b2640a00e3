"""The checks of `messages`: roles, content, the tool-call protocol, the empty-content rules.

Moonshot's rules as docs/wire/kimi.md records them (from Moonshot's documentation and from other
clients' reports — litellm, AstrBot, lobehub threads):
- an assistant message with `tool_calls` must carry a non-empty `reasoning_content` while
  thinking is on (Moonshot's exact message, with the message's index);
- `content: ""` (or null, or absent) beside tool calls is accepted — the OpenAI SDK's own
  `messages.append(response.choices[0].message)` sends it;
- a text part with an empty text (`[{"type": "text", "text": ""}]`) is refused, and so is
  an assistant message with neither text nor tool calls;
- every call must be answered by one tool message before the next non-tool message.
"""

from __future__ import annotations

from typing import Any

from kimi_agent.models import ModelProfile

from ._refusal import Refusal, bad

__all__ = ["check_messages"]

_ROLES = ("system", "user", "assistant", "tool")


def check_messages(value: Any, profile: ModelProfile) -> list[dict[str, Any]]:
    """The messages of a body, or the `Refusal` Moonshot would answer."""
    if not isinstance(value, list) or not value:
        raise bad("'messages' is required and must be a non-empty array")
    messages: list[dict[str, Any]] = value
    pending: dict[str, bool] | None = None  # call ids of the open tool step → answered?
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad(f"messages[{i}] must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise bad(f"messages[{i}]: unknown role {role!r}, expected one of {', '.join(_ROLES)}")
        if role == "tool":
            pending = _tool_message(message, i, pending)
            continue
        if pending is not None:
            _unanswered(pending)
        pending = None
        if role == "assistant":
            pending = _assistant(message, i, profile)
        else:
            _content(message.get("content"), i, profile, required=True)
    if pending is not None:
        _unanswered(pending)
    return messages


def _empty(i: int, role: str) -> Refusal:
    return bad(f"the message at position {i} with role '{role}' must not be empty")


def _content(content: Any, i: int, profile: ModelProfile, *, required: bool) -> str:
    """The text of a content field (checked); "" when there is none."""
    if content is None and not required:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(f"messages[{i}].content must be a string or an array of content parts")
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"] == "":
                raise bad(f"messages[{i}].content: text content part must not be empty")
            texts.append(part["text"])
            continue
        if kind in ("image_url", "input_image", "image"):
            raise bad(f"{profile.name} does not support image input (messages[{i}])")
        raise bad(f"messages[{i}].content has an invalid part: {part!r}")
    return "".join(texts)


def _assistant(message: dict[str, Any], i: int, profile: ModelProfile) -> dict[str, bool] | None:
    text = _content(message.get("content"), i, profile, required=False)
    calls = message.get("tool_calls")
    if calls is None or calls == []:
        if calls == [] or text == "":
            raise _empty(i, "assistant")
        return None
    if not isinstance(calls, list):
        raise bad(f"messages[{i}].tool_calls must be an array")
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str) or reasoning == "":
        raise bad(
            "thinking is enabled but reasoning_content is missing in assistant tool call "
            f"message at index {i}",
            prefix=False,
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
            raise bad(
                f"messages[{i}].tool_calls[{j}] must have a non-empty string 'id', type "
                "'function' and 'function' with string 'name' and 'arguments'"
            )
        if call.get("type", "function") != "function":
            raise bad(f"messages[{i}].tool_calls[{j}].type must be 'function'")
        if call_id in ids:
            raise bad(f"tool call id {call_id} appears twice in messages[{i}]")
        ids[call_id] = False
    return ids


def _tool_message(
    message: dict[str, Any], i: int, pending: dict[str, bool] | None
) -> dict[str, bool]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise bad(f"messages[{i}]: a tool message needs a string 'tool_call_id'")
    content = message.get("content")
    if not isinstance(content, str | list):
        raise bad(f"messages[{i}]: a tool message needs 'content'")
    if pending is None or call_id not in pending:
        raise bad(
            f"tool_call_id {call_id} is not found: the tool message at index {i} answers no "
            "call of the previous assistant message"
        )
    if pending[call_id]:
        raise bad(f"tool_call_id {call_id} is answered twice (messages[{i}])")
    pending[call_id] = True
    return pending


def _unanswered(pending: dict[str, bool]) -> None:
    missing = [call_id for call_id, answered in pending.items() if not answered]
    if missing:
        raise bad(
            "an assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(missing)}"
        )
