"""What a responder sees and what it answers: `SimRequest`, `Reply`, `ToolCallSpec`.

A responder is a function `(SimRequest) -> Reply` (sync or async; returning a plain `str` is
shorthand for `Reply(text=...)`). `SimRequest` is a small typed view of a request that already
passed the strict checks, so responders can rely on its shape. The simulator turns a `Reply`
into Moonshot's wire shapes (see `render.py`) and gives the tool calls opaque ids in Kimi's
styles (`IdMaker`), deliberately not unique across turns, because Kimi's are not.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, TypeAlias

from kimi_agent.models._profiles import ModelProfile
from kimi_agent.wire import Message, dumps, parse_messages

__all__ = [
    "IdMaker",
    "IdStyle",
    "Reply",
    "Responder",
    "SimRequest",
    "ToolCallLike",
    "ToolCallSpec",
    "ToolResult",
    "call_responder",
    "echo_responder",
    "message_text",
]


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    """One tool call of a reply. `arguments` is a mapping (sent as JSON) or a raw JSON string
    (sent as is, e.g. to test a client's handling of broken arguments). `id` overrides the id
    the simulator would make."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return dumps(dict(self.arguments))


ToolCallLike: TypeAlias = ToolCallSpec | tuple[str, Mapping[str, Any] | str]
"""A tool call as a responder may give it: a `ToolCallSpec` or a `(name, arguments)` tuple."""


@dataclass(slots=True)
class Reply:
    """The model's answer to one request.

    `text` becomes `content`, `reasoning` becomes `reasoning_content`. `finish_reason` defaults
    to "tool_calls" when there are calls and "stop" otherwise; give "length" (with no text)
    to simulate a reply that ran out of budget inside its reasoning. `usage` overrides fields
    of the usage the simulator computes (e.g. `{"completion_tokens": 9000}`).
    """

    text: str | None = None
    reasoning: str | None = None
    tool_calls: Sequence[ToolCallLike] = ()
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None

    def calls(self) -> list[ToolCallSpec]:
        """The tool calls as `ToolCallSpec`s, in order."""
        specs: list[ToolCallSpec] = []
        for call in self.tool_calls:
            if isinstance(call, ToolCallSpec):
                specs.append(call)
            elif isinstance(call, tuple) and len(call) == 2 and isinstance(call[0], str):
                specs.append(ToolCallSpec(call[0], call[1]))
            else:
                raise TypeError(
                    f"a tool call must be a ToolCallSpec or a (name, arguments) tuple, got {call!r}"
                )
        return specs

    @property
    def effective_finish_reason(self) -> str:
        if self.finish_reason:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One tool message of the last step, with the call it answers."""

    tool_call_id: str
    name: str
    arguments: str
    content: str


@dataclass
class SimRequest:
    """A typed view of one accepted chat-completions request, given to responders and scripts.

    `messages` and `tools` are the wire dicts as the client sent them; `wire_messages` parses
    them into `kimi_agent.wire` messages on first use. `tool_results` are the tool messages at
    the end of the conversation (the results of the step the model asked for), `[]` when the
    conversation ends with a user message.
    """

    model: str
    profile: ModelProfile
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    response_format: dict[str, Any] | None
    headers: dict[str, str]
    index: int
    """Position of this request among all the simulator received (0-based)."""

    @cached_property
    def wire_messages(self) -> list[Message]:
        return parse_messages(self.messages)

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]

    @cached_property
    def last_user_text(self) -> str:
        """Text of the last user message ("" when there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message.get("content"))
        return ""

    @property
    def ends_with_tool_results(self) -> bool:
        return bool(self.messages) and self.messages[-1].get("role") == "tool"

    @cached_property
    def tool_results(self) -> list[ToolResult]:
        trailing: list[dict[str, Any]] = []
        i = len(self.messages) - 1
        while i >= 0 and self.messages[i].get("role") == "tool":
            trailing.insert(0, self.messages[i])
            i -= 1
        calls: dict[str, tuple[str, str]] = {}
        if i >= 0 and self.messages[i].get("role") == "assistant":
            for call in self.messages[i].get("tool_calls") or []:
                function = call.get("function") or {}
                calls[str(call.get("id"))] = (
                    str(function.get("name", "")),
                    str(function.get("arguments", "")),
                )
        results = []
        for message in trailing:
            call_id = str(message.get("tool_call_id", ""))
            name, arguments = calls.get(call_id, ("", ""))
            results.append(
                ToolResult(call_id, name, arguments, message_text(message.get("content")))
            )
        return results

    @property
    def turn(self) -> int:
        """How many assistant messages the conversation already holds."""
        return sum(1 for m in self.messages if m.get("role") == "assistant")

    @property
    def wants_json(self) -> bool:
        kind = (self.response_format or {}).get("type")
        return kind in ("json_object", "json_schema")


def message_text(content: Any) -> str:
    """The text of a message `content`: a string, or the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


ReplyLike: TypeAlias = Reply | str
Responder: TypeAlias = Callable[[SimRequest], ReplyLike | Awaitable[ReplyLike]]


async def call_responder(responder: Responder, request: SimRequest) -> Reply:
    """Run a sync or async responder and normalise its answer to a `Reply`."""
    result = responder(request)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, str):
        return Reply(text=result)
    if not isinstance(result, Reply):
        raise TypeError(f"a responder must return a Reply or a str, got {type(result).__name__}")
    result.calls()  # fail here, with a clear message, on malformed tool calls
    return result


def echo_responder(request: SimRequest) -> Reply:
    """The default responder: quotes the last user message (or the tool results) back.

    Used by `kimi-agent chat` offline and whenever no script or responder is given. When JSON
    output is asked for, the answer is a JSON object so that JSON mode stays valid.
    """
    if request.ends_with_tool_results:
        said = "; ".join(f"{r.name or r.tool_call_id} → {r.content}" for r in request.tool_results)
        text = f"Tool results: {said}"
    else:
        text = f"Echo: {request.last_user_text}"
    if request.wants_json:
        text = json.dumps({"echo": text}, ensure_ascii=False)
    return Reply(text=text, reasoning="The simulator echoes the conversation back.")


IdStyle = Literal["mixed", "colon", "functions", "underscore"]
_ROTATION: tuple[IdStyle, ...] = ("colon", "functions", "underscore")


class IdMaker:
    """Opaque tool-call ids in the styles Kimi was seen using.

    - "colon": `get_order:0` (position in the reply; repeats in later turns),
    - "functions": `functions.get_order:3` (counter over the conversation's calls),
    - "underscore": `get_order_0` (position in the reply; repeats in later turns).

    "mixed" (the default) rotates the style from one reply with calls to the next, so clients
    that parse ids or assume uniqueness across turns break here first. Ids are always unique
    within one reply.
    """

    def __init__(self, style: IdStyle = "mixed") -> None:
        self.style: IdStyle = style
        self._replies = 0

    def make(self, calls: Sequence[ToolCallSpec], messages: Sequence[dict[str, Any]]) -> list[str]:
        style = self.style
        if style == "mixed":
            style = _ROTATION[self._replies % len(_ROTATION)]
        self._replies += 1
        earlier = sum(
            len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant"
        )
        ids: list[str] = []
        for i, call in enumerate(calls):
            if call.id is not None:
                ids.append(call.id)
            elif style == "functions":
                ids.append(f"functions.{call.name}:{earlier + i}")
            elif style == "underscore":
                ids.append(f"{call.name}_{i}")
            else:
                ids.append(f"{call.name}:{i}")
        return ids
