"""Width folding that keeps every character in place (one character in, one out).

Detection works on the folded text while spans and replacements refer to the original, so
the fold must never change the length: full-width ASCII (U+FF01–U+FF5E, except the comma and
colon ``，：`` of Chinese punctuation) becomes ASCII, the ideographic space U+3000 a space,
dashes a hyphen; everything else is kept as it is.
"""

from __future__ import annotations

__all__ = ["fold_width"]

_WIDTH_TABLE: dict[int, int] = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
# The full-width comma and colon are Chinese punctuation, never a thousands separator or the
# colon of a time: "13812345678，13912345678" is two phone numbers.
del _WIDTH_TABLE[0xFF0C], _WIDTH_TABLE[0xFF1A]
_WIDTH_TABLE[0x3000] = 0x20
_WIDTH_TABLE[0x00A0] = 0x20  # no-break space
_WIDTH_TABLE[0xFFE5] = ord("¥")  # full-width yen sign, used for 元 in Chinese text
_WIDTH_TABLE[0x2010] = ord("-")  # hyphen
_WIDTH_TABLE[0x2011] = ord("-")  # non-breaking hyphen
_WIDTH_TABLE[0x2012] = ord("-")  # figure dash
_WIDTH_TABLE[0x2013] = ord("-")  # en dash


def fold_width(text: str) -> str:
    """`text` with full-width digits, letters and signs as ASCII, same length as `text`."""
    return text.translate(_WIDTH_TABLE)
