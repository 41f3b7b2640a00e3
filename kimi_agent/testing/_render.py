"""A `Reply` in Moonshot's wire shapes: the `chat.completion` object, the SSE events, usage.

Non-streamed: `message.reasoning_content` always present (may be ""), `content` "" beside
tool calls, tool calls with an `index`, usage at the top level (as the gateway documents).
Streamed (docs/wire/kimi.md#streaming-sse): a first chunk `{"role": "assistant", "content": ""}`;
reasoning deltas, then content deltas, then per call one header delta (index, id, type, name,
`arguments: ""`) followed by argument fragments (index + arguments only); a finish chunk with
`delta: {}`, the `finish_reason` and `choices[0].usage`; a trailing `"choices": []` chunk with
the top-level usage when `stream_options.include_usage` is set; then `data: [DONE]`.

`PromptCache` simulates Moonshot's automatic prompt caching on a byte-identical prefix: it
remembers, per model, a hash of every prefix (the `tools` array, then the messages one by
one, each in its compact JSON form) of the requests it answered, and reports as
`cached_tokens` the tokens (the simulator's own count) of the longest prefix a recent
request shared — so a client that keeps its system prompt and tools stable sees its cache
share grow, and one that reorders or rewrites history sees it drop. Memory is bounded: at
most `max_entries` prefixes, the least recently used forgotten first.

A "no_choices" fault renders every chunk (or the body) with `"choices": []`; `error_event`
is the gateway's terminal error frame.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kimi_agent.wire import dumps

from ._replies import Reply, ToolCallSpec
from ._tokens import count_message, count_text, count_tools

__all__ = [
    "PromptCache",
    "Rendered",
    "completion_body",
    "error_event",
    "make_usage",
    "stream_events",
]

TEXT_PIECE = 6
"""Characters per streamed text delta."""
ARGS_PIECE = 8
"""Characters per streamed argument fragment."""


class PromptCache:
    """Per-model memory of request prefixes, bounded (least recently used goes first)."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, bytes], None] = OrderedDict()

    def clear(self) -> None:
        self._seen.clear()

    def __len__(self) -> int:
        """How many prefixes are remembered (at most `max_entries`)."""
        return len(self._seen)

    def cached_tokens(
        self, model: str, tools: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]]
    ) -> int:
        """Tokens of the longest prefix seen before for `model`; then remember every prefix."""
        digest = hashlib.blake2b(dumps(list(tools)).encode(), digest_size=16)
        tokens = count_tools(list(tools))
        prefixes: list[tuple[bytes, int]] = [(digest.digest(), tokens)] if tools else []
        for message in messages:
            digest.update(b"\x00" + dumps(message).encode())
            tokens += count_message(message)
            prefixes.append((digest.digest(), tokens))
        cached = 0
        for key, count in prefixes:
            if (model, key) in self._seen:
                cached = count
                self._seen.move_to_end((model, key))
            else:
                self._seen[(model, key)] = None
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return cached


def make_usage(
    prompt_tokens: int,
    cached_tokens: int,
    reply: Reply,
    calls: Sequence[ToolCallSpec],
) -> dict[str, Any]:
    """Moonshot's usage object, with both places for cached tokens; `reply.usage` overrides."""
    reasoning = count_text(reply.reasoning or "")
    completion = reasoning + count_text(reply.text or "")
    completion += sum(count_text(c.name) + count_text(c.arguments_json) for c in calls)
    fields = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "cached_tokens": cached_tokens,
        "reasoning_tokens": reasoning,
    }
    fields.update(reply.usage or {})
    total = fields.get("total_tokens", fields["prompt_tokens"] + fields["completion_tokens"])
    return {
        "prompt_tokens": fields["prompt_tokens"],
        "completion_tokens": fields["completion_tokens"],
        "total_tokens": total,
        "cached_tokens": fields["cached_tokens"],
        "prompt_tokens_details": {"cached_tokens": fields["cached_tokens"]},
        "completion_tokens_details": {"reasoning_tokens": fields["reasoning_tokens"]},
    }


@dataclass(frozen=True, slots=True)
class Rendered:
    """Everything the app needs to send one reply."""

    completion_id: str
    created: int
    model: str
    reply: Reply
    calls: list[ToolCallSpec]
    ids: list[str]
    usage: dict[str, Any]
    no_choices: bool = False

    @classmethod
    def make(
        cls,
        model: str,
        reply: Reply,
        ids: list[str],
        usage: dict[str, Any],
        *,
        no_choices: bool = False,
    ) -> Rendered:
        return cls(
            completion_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            model=model,
            reply=reply,
            calls=reply.calls(),
            ids=ids,
            usage=usage,
            no_choices=no_choices,
        )

    @property
    def completion_tokens(self) -> int:
        value = self.usage["completion_tokens"]
        return value if isinstance(value, int) else 0


def completion_body(rendered: Rendered) -> dict[str, Any]:
    """The non-streamed `chat.completion` object."""
    reply = rendered.reply
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or "",
        "reasoning_content": reply.reasoning or "",
    }
    if rendered.calls:
        message["tool_calls"] = [
            {
                "index": i,
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for i, (call, call_id) in enumerate(zip(rendered.calls, rendered.ids, strict=True))
        ]
    return {
        "id": rendered.completion_id,
        "object": "chat.completion",
        "created": rendered.created,
        "model": rendered.model,
        "choices": []
        if rendered.no_choices
        else [{"index": 0, "message": message, "finish_reason": reply.effective_finish_reason}],
        "usage": rendered.usage,
    }


def stream_events(rendered: Rendered, *, include_usage: bool) -> list[tuple[bytes, int]]:
    """The SSE events of a streamed reply, each with the tokens it carries (for latency).

    The last event is always `data: [DONE]`. With `no_choices` every chunk has
    `"choices": []` and the last one the top-level usage.
    """
    if rendered.no_choices:
        empty = [(_event(rendered, []), 0), (_event(rendered, [], usage=rendered.usage), 0)]
        return [*empty, (b"data: [DONE]\n\n", 0)]
    deltas: list[tuple[dict[str, Any], int]] = [({"role": "assistant", "content": ""}, 0)]
    reply = rendered.reply
    for piece in _pieces(reply.reasoning or "", TEXT_PIECE):
        deltas.append(({"reasoning_content": piece}, count_text(piece)))
    for piece in _pieces(reply.text or "", TEXT_PIECE):
        deltas.append(({"content": piece}, count_text(piece)))
    for i, (call, call_id) in enumerate(zip(rendered.calls, rendered.ids, strict=True)):
        header = {
            "index": i,
            "id": call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append(({"tool_calls": [header]}, count_text(call.name)))
        arguments = call.arguments_json
        size = max(1, min(ARGS_PIECE, len(arguments) // 2))
        for piece in _pieces(arguments, size):
            fragment = {"index": i, "function": {"arguments": piece}}
            deltas.append(({"tool_calls": [fragment]}, count_text(piece)))
    events = [(_event(rendered, [_choice(delta, None)]), tokens) for delta, tokens in deltas]
    finish = _choice({}, reply.effective_finish_reason)
    finish["usage"] = rendered.usage
    events.append((_event(rendered, [finish]), 0))
    if include_usage:
        events.append((_event(rendered, [], usage=rendered.usage), 0))
    events.append((b"data: [DONE]\n\n", 0))
    return events


def error_event(body: Mapping[str, Any]) -> bytes:
    """The terminal SSE frame of a failure mid-stream: `data: {"error": {...}}`."""
    return b"data: " + dumps(dict(body)).encode() + b"\n\n"


def _choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}


def _event(
    rendered: Rendered, choices: list[dict[str, Any]], usage: Mapping[str, Any] | None = None
) -> bytes:
    chunk: dict[str, Any] = {
        "id": rendered.completion_id,
        "object": "chat.completion.chunk",
        "created": rendered.created,
        "model": rendered.model,
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = dict(usage)
    return b"data: " + dumps(chunk).encode() + b"\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]
