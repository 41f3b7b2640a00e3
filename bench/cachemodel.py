"""The bench gateway's model of Kimi's automatic prompt cache.

Kimi caches "automatically on a byte-identical prefix" (the facts the repository copies in
docs/): a request is served from cache for as long as its prompt starts with exactly the bytes
of an earlier prompt. The model here is per conversation and deliberately simple:

- a conversation is named by a marker in its system prompt, `[bench-cache:<key>]` (requests
  without one are not modelled), so the key survives trimming of the history;
- the prompt is the `tools` array followed by every message of `messages`, each serialised
  compactly (`json.dumps(..., ensure_ascii=False, separators=(",", ":"))`) in the order the
  client sent its keys;
- cached = the longest byte-identical prefix shared with that conversation's previous request
  (whole messages, then the common prefix of the first message that differs);
- tokens are estimated from the text (0.7 token per CJK character, 1 per 3 other characters,
  the same rule as kimi-agent's estimate), so the share is a share of prompt tokens, not bytes.

It is a model, not the real cache: there is no expiry, no minimum cacheable length and no
block granularity; the real service may cache less, never more, than a byte-identical prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

MARKER: Final = "[bench-cache:"
MAX_CONVERSATIONS: Final = 1000


def estimate_tokens(text: str) -> float:
    """Tokens of `text` by kimi-agent's rule (CJK 0.7 per character, other text 1 per 3)."""
    if not text:
        return 0.0
    n_chars = len(text)
    if text.isascii():
        return n_chars / 3.0
    n_wide = min(n_chars, (len(text.encode("utf-8")) - n_chars) // 2)
    return n_wide * 0.7 + (n_chars - n_wide) / 3.0


def _piece(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def conversation_key(messages: list[Any]) -> str | None:
    """The `[bench-cache:<key>]` of the system prompt, or None when the request has none."""
    if not messages or not isinstance(messages[0], dict):
        return None
    first = messages[0]
    content = first.get("content")
    if first.get("role") != "system" or not isinstance(content, str):
        return None
    start = content.find(MARKER)
    if start < 0:
        return None
    end = content.find("]", start)
    return content[start + len(MARKER) : end] if end > start else None


@dataclass
class Conversation:
    previous: list[str] = field(default_factory=list)
    requests: list[tuple[float, float, bool]] = field(default_factory=list)
    """(prompt tokens, cached tokens, whole previous prompt reused) of every request."""


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings (binary search on slices: C speed)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class CacheModel:
    """Cached prompt tokens per request, per conversation."""

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}

    def observe(self, request: dict[str, Any]) -> tuple[float, float] | None:
        """(prompt tokens, cached tokens) of this request, or None if it is not modelled."""
        messages = request.get("messages")
        if not isinstance(messages, list):
            return None
        key = conversation_key(messages)
        if key is None:
            return None
        conversation = self.conversations.get(key)
        if conversation is None:
            if len(self.conversations) >= MAX_CONVERSATIONS:
                self.conversations.pop(next(iter(self.conversations)))
            conversation = self.conversations[key] = Conversation()
        pieces = [_piece(request.get("tools"))] + [_piece(m) for m in messages]
        previous = conversation.previous
        cached = 0.0
        for index, piece in enumerate(pieces):
            if index < len(previous) and previous[index] == piece:
                cached += estimate_tokens(piece)
                continue
            if index < len(previous):
                cached += estimate_tokens(piece[: common_prefix(piece, previous[index])])
            break
        total = sum(estimate_tokens(p) for p in pieces)
        extends = bool(previous) and pieces[: len(previous)] == previous
        conversation.previous = pieces
        conversation.requests.append((total, cached, extends))
        return total, cached

    def summary(self, key: str) -> dict[str, Any]:
        conversation = self.conversations.get(key)
        if conversation is None:
            return {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0, "per_request": []}
        prompt = sum(p for p, _, _ in conversation.requests)
        cached = sum(c for _, c, _ in conversation.requests)
        return {
            "requests": len(conversation.requests),
            "prompt_tokens": prompt,
            "cached_tokens": cached,
            "share": cached / prompt if prompt else 0.0,
            "per_request": [[round(p), round(c), int(e)] for p, c, e in conversation.requests],
        }
