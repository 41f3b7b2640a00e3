"""The simulator's own prompt-token count, independent of the client's estimator.

The real gateway counts tokens with Kimi's tokenizer, which is not available offline; the
simulator models it with a count of its own, so that a client's estimate is checked against
something it did not compute. The model, per text:
- a CJK ideograph, kana or hangul syllable: 0.6 tokens (Chinese tokenizers of Kimi's kind
  spend 0.5-0.65 tokens a character on modern prose);
- any other non-ASCII character: 1 token;
- ASCII: one token per 3.6 characters, rounded up per text (English and JSON average
  3.5-4 characters a token there);
and per message 4 tokens of chat-template framing, per tool 8. The count is deliberately a
little lower than the client's estimate (which leans high on purpose), as a real tokenizer
would be, so a client that clamps `max_tokens` with its margin fits, and one that does not
clamp at all is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["count_message", "count_messages", "count_text", "count_tools"]

CJK_TOKENS = 0.6
ASCII_CHARS_PER_TOKEN = 3.6
MESSAGE_FRAME = 4
TOOL_FRAME = 8
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def count_text(text: str) -> int:
    """Modelled tokens of one text."""
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / ASCII_CHARS_PER_TOKEN)
    cjk = len(_CJK.findall(text))
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    other = len(text) - cjk - ascii_chars
    return math.ceil(cjk * CJK_TOKENS + other + ascii_chars / ASCII_CHARS_PER_TOKEN)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def count_message(message: dict[str, Any]) -> int:
    """Modelled tokens of one wire message (its role, texts and JSON fields)."""
    total = MESSAGE_FRAME
    for key, value in message.items():
        if key == "role":
            continue
        total += count_text(value) if isinstance(value, str) else count_text(_json(value))
    return total


def count_messages(messages: Iterable[dict[str, Any]]) -> int:
    return sum(count_message(message) for message in messages)


def count_tools(tools: list[dict[str, Any]]) -> int:
    """Modelled tokens of a `tools` array."""
    return sum(TOOL_FRAME + count_text(_json(tool)) for tool in tools)
