"""Scripts: canned conversations in JSON or YAML, matched turn by turn.

```yaml
turns:
  - when: {user: "A1024"}                 # substring of the last user message
    reply:
      reasoning: 用户想查订单，先调用工具。
      tool_calls:
        - {name: get_order, arguments: {order_id: A1024}}
        - [get_shipping, {order_id: A1024}]   # (name, arguments) works too
  - when: {tool: get_order, tool_result: 已发货}   # after results of get_order containing 已发货
    reply: {text: 您的订单已发货。}
  - when: {user_regex: "退款|refund"}
    model: kimi-k2-6                        # only for this model
    times: 1                                # used at most once
    reply: {text: 好的，正在为您办理退款。}
  - reply: {text: 抱歉，我没有听懂。}          # no `when`: matches anything
```

A file may also be just the list of turns. The reply fields may sit at the turn's top level
instead of under `reply`. Fields of a reply: `text`, `reasoning`, `tool_calls`,
`finish_reason`, `usage`.

Matching, first turn in file order wins:
- a turn with a tool condition (`tool`, `tool_result`, `tool_result_regex`) matches only a
  request that ends with tool results, and one of those results must satisfy all of them;
- a turn with only user conditions (`user`, `user_regex`) matches only a request that ends
  with a user message — so the turn that asked for tools does not match again when the
  results come back; beside a tool condition they test the last user message as context;
- a turn without conditions matches every request.

A script that does not parse raises `ScriptError` naming the file and the place.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kimi_agent.errors import ConfigurationError

from ._replies import Reply, SimRequest, ToolCallSpec

__all__ = ["NoScriptMatch", "Script", "ScriptError", "ScriptTurn", "load_script"]

_WHEN_KEYS = frozenset({"user", "user_regex", "tool", "tool_result", "tool_result_regex"})
_REPLY_KEYS = frozenset({"text", "reasoning", "tool_calls", "finish_reason", "usage"})
_TURN_KEYS = frozenset({"when", "reply", "model", "times", "name"}) | _REPLY_KEYS


class ScriptError(ConfigurationError):
    """A script that cannot be read: says where and what is wrong."""


class NoScriptMatch(LookupError):
    """No turn of the script matched a request (answered as a 500 `simulator_error`)."""


@dataclass
class ScriptTurn:
    """One scripted turn: conditions, the reply, and optional limits."""

    reply: Reply
    user: str | None = None
    user_regex: re.Pattern[str] | None = None
    tool: str | None = None
    tool_result: str | None = None
    tool_result_regex: re.Pattern[str] | None = None
    model: str | None = None
    times: int | None = None
    name: str = ""
    used: int = field(default=0)

    @property
    def is_tool_turn(self) -> bool:
        return any(x is not None for x in (self.tool, self.tool_result, self.tool_result_regex))

    @property
    def is_user_turn(self) -> bool:
        return self.user is not None or self.user_regex is not None

    def matches(self, request: SimRequest) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.model is not None and self.model != request.model:
            return False
        if self.is_tool_turn:
            if not request.ends_with_tool_results or not any(
                self._result_matches(r.name, r.content) for r in request.tool_results
            ):
                return False
        elif self.is_user_turn and request.messages[-1].get("role") != "user":
            return False
        text = request.last_user_text
        if self.user is not None and self.user not in text:
            return False
        return self.user_regex is None or self.user_regex.search(text) is not None

    def _result_matches(self, name: str, content: str) -> bool:
        if self.tool is not None and self.tool != name:
            return False
        if self.tool_result is not None and self.tool_result not in content:
            return False
        return self.tool_result_regex is None or self.tool_result_regex.search(content) is not None


class Script:
    """A list of `ScriptTurn`s; `answer()` gives the reply of the first matching turn."""

    def __init__(self, turns: Sequence[ScriptTurn], source: str = "<script>") -> None:
        self.turns = list(turns)
        self.source = source

    def answer(self, request: SimRequest) -> Reply | None:
        for turn in self.turns:
            if turn.matches(request):
                turn.used += 1
                return turn.reply
        return None

    def no_match_message(self, request: SimRequest) -> str:
        if request.ends_with_tool_results:
            what = "tool results " + "; ".join(
                f"{r.name or r.tool_call_id}: {_clip(r.content)!r}" for r in request.tool_results
            )
        else:
            what = f"last user message {_clip(request.last_user_text)!r}"
        return (
            f"simulator: no script turn matched the request to {request.model} ({what}); "
            f"script {self.source} has {len(self.turns)} turn(s) — add a turn for it, or a "
            "catch-all turn without 'when'"
        )

    @classmethod
    def from_data(cls, data: Any, source: str = "<script>") -> Script:
        """A script from parsed JSON/YAML: a list of turns or `{"turns": [...]}`."""
        if isinstance(data, Mapping):
            extra = set(data) - {"turns"}
            if extra:
                raise ScriptError(f"{source}: unknown top-level key(s) {sorted(extra)}")
            data = data.get("turns")
        if not isinstance(data, list):
            raise ScriptError(f"{source}: a script is a list of turns, or {{turns: [...]}}")
        return cls([_turn(item, f"{source}: turns[{i}]") for i, item in enumerate(data)], source)

    @classmethod
    def from_text(cls, text: str, *, format: str = "yaml", source: str = "<text>") -> Script:
        """A script from JSON or YAML text."""
        if format == "json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ScriptError(f"{source}: not valid JSON: {exc}") from None
        elif format == "yaml":
            import yaml  # optional extra `sim`

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ScriptError(f"{source}: not valid YAML: {exc}") from None
        else:
            raise ScriptError(f"unknown script format {format!r}: use 'json' or 'yaml'")
        return cls.from_data(data, source)


def load_script(
    script: Script | str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
) -> Script:
    """A `Script` from a path (.json, or YAML for anything else), parsed data, or a Script."""
    if isinstance(script, Script):
        return script
    if isinstance(script, str | os.PathLike):
        path = Path(script)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"cannot read script {path}: {exc}") from None
        fmt = "json" if path.suffix.lower() == ".json" else "yaml"
        return Script.from_text(text, format=fmt, source=str(path))
    return Script.from_data(script)


def _turn(item: Any, where: str) -> ScriptTurn:
    if not isinstance(item, Mapping):
        raise ScriptError(f"{where}: a turn must be a mapping, got {item!r}")
    unknown = set(item) - _TURN_KEYS
    if unknown:
        raise ScriptError(
            f"{where}: unknown key(s) {sorted(unknown)}; a turn has {sorted(_TURN_KEYS)}"
        )
    when = item.get("when") or {}
    if not isinstance(when, Mapping):
        raise ScriptError(f"{where}.when: must be a mapping of conditions")
    unknown = set(when) - _WHEN_KEYS
    if unknown:
        raise ScriptError(
            f"{where}.when: unknown condition(s) {sorted(unknown)}; use {sorted(_WHEN_KEYS)}"
        )
    flat = {k: item[k] for k in _REPLY_KEYS if k in item}
    if "reply" in item and flat:
        raise ScriptError(f"{where}: give the reply under 'reply' or at the top level, not both")
    reply_data = item.get("reply", flat)
    times = item.get("times")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ScriptError(f"{where}.times: must be a positive integer")
    model = item.get("model")
    if model is not None and not isinstance(model, str):
        raise ScriptError(f"{where}.model: must be a string")
    return ScriptTurn(
        reply=_reply(reply_data, f"{where}.reply"),
        user=_str(when, "user", where),
        user_regex=_regex(when, "user_regex", where),
        tool=_str(when, "tool", where),
        tool_result=_str(when, "tool_result", where),
        tool_result_regex=_regex(when, "tool_result_regex", where),
        model=model,
        times=times,
        name=str(item.get("name", "")),
    )


def _reply(data: Any, where: str) -> Reply:
    if isinstance(data, str):
        return Reply(text=data)
    if not isinstance(data, Mapping) or not data:
        raise ScriptError(f"{where}: a reply needs text, reasoning or tool_calls")
    unknown = set(data) - _REPLY_KEYS
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}; use {sorted(_REPLY_KEYS)}")
    for key in ("text", "reasoning", "finish_reason"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ScriptError(f"{where}.{key}: must be a string")
    usage = data.get("usage")
    if usage is not None and (
        not isinstance(usage, Mapping) or not all(isinstance(v, int) for v in usage.values())
    ):
        raise ScriptError(f"{where}.usage: must map usage fields to integers")
    calls = data.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ScriptError(f"{where}.tool_calls: must be a list")
    return Reply(
        text=data.get("text"),
        reasoning=data.get("reasoning"),
        tool_calls=[_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)],
        finish_reason=data.get("finish_reason"),
        usage=dict(usage) if usage else None,
    )


def _call(data: Any, where: str) -> ToolCallSpec:
    if isinstance(data, list) and len(data) == 2:
        data = {"name": data[0], "arguments": data[1]}
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise ScriptError(f"{where}: a tool call is {{name, arguments, id?}} or [name, arguments]")
    arguments = data.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping | str):
        raise ScriptError(f"{where}.arguments: must be a mapping or a JSON string")
    call_id = data.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise ScriptError(f"{where}.id: must be a string")
    unknown = set(data) - {"name", "arguments", "id"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}")
    return ToolCallSpec(data["name"], arguments, call_id)


def _str(when: Mapping[str, Any], key: str, where: str) -> str | None:
    value = when.get(key)
    if value is not None and not isinstance(value, str):
        raise ScriptError(f"{where}.when.{key}: must be a string")
    return value


def _regex(when: Mapping[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    value = _str(when, key, where)
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise ScriptError(f"{where}.when.{key}: not a valid regex: {exc}") from None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
