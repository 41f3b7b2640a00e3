"""A token estimate that is right for Chinese, English and mixed text, and cheap.

Moonshot's guidance: a common Chinese text costs about one token per 1.5-2 characters, an
English text about one token per 3-4 characters. We count CJK characters without a Python
loop: in UTF-8 they take three bytes and ASCII one, so `(len(utf8) - len(text)) / 2`
approximates the number of non-ASCII characters. The estimate leans high (CJK at 0.7 tokens
a character, other text at one token per 3.5 characters) because it decides whether a request
fits the window; `ModelProfile.margin` adds head-room on top.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

CJK_TOKENS_PER_CHAR = 0.7
OTHER_CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4
"""Tokens of framing the chat template adds around each message."""


def estimate_text(text: str) -> int:
    """Estimated tokens of a string."""
    if not text:
        return 0
    n_chars = len(text)
    if text.isascii():
        return int(n_chars / OTHER_CHARS_PER_TOKEN) + 1
    n_wide = (len(text.encode("utf-8")) - n_chars) // 2
    n_wide = min(n_wide, n_chars)
    return int(n_wide * CJK_TOKENS_PER_CHAR + (n_chars - n_wide) / OTHER_CHARS_PER_TOKEN) + 1


def estimate_wire_message(message: dict[str, Any]) -> int:
    """Estimated tokens of one message in its wire form (a dict)."""
    total = MESSAGE_OVERHEAD
    for key, value in message.items():
        if key == "role":
            continue
        if isinstance(value, str):
            total += estimate_text(value)
        elif value is not None:
            total += estimate_text(_compact(value))
    return total


def estimate_wire_messages(messages: Iterable[dict[str, Any]]) -> int:
    return sum(estimate_wire_message(message) for message in messages)


def estimate_tools(tools: list[dict[str, Any]] | None) -> int:
    """Estimated tokens of the `tools` array of a request."""
    if not tools:
        return 0
    return estimate_text(_compact(tools))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
