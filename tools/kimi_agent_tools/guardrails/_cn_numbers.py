"""Chinese numerals as numbers: 八十九 → 89, 一万二千 → 12000, 捌拾玖点伍 → 89.5.

Ordinary (一二三…十百千万亿, 两, 〇/零) and financial (壹贰叁…拾佰仟) numerals. Readings
that are not one number — digit strings such as 一二三 or 八九 ("eight or nine") — give
`None` rather than a guess.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["CN_NUMERAL_CHARS", "parse_chinese_number"]

_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3,
    "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7,
    "八": 8, "捌": 8, "九": 9, "玖": 9,
}
_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG = {"万": 10**4, "亿": 10**8}
CN_NUMERAL_CHARS = "".join(_DIGITS) + "".join(_UNITS) + "".join(_BIG) + "点"
"""Every character a Chinese numeral here is written with."""


def _integer(text: str) -> int | None:
    total = section = 0
    number: int | None = None
    for char in text:
        if char in _DIGITS:
            if number is not None and number != 0 and _DIGITS[char] != 0:
                return None  # two digits in a row: 一二三, 八九
            number = _DIGITS[char]
        elif char in _UNITS:
            section += (number if number else 1) * _UNITS[char]
            number = None
        elif char in _BIG:
            section += number or 0
            if char == "亿":
                total = (total + section) * _BIG[char]
            else:
                total += section * _BIG[char]
            section, number = 0, None
        else:
            return None
    return total + section + (number or 0)


def parse_chinese_number(text: str) -> Decimal | None:
    """The value of a Chinese numeral (``点`` for the decimal point), or `None`."""
    if not text:
        return None
    if not any(c in _DIGITS or c in _UNITS for c in text):
        return None  # 万, 亿 alone (万元户) are no number
    whole, _, fraction = text.partition("点")
    if "点" in fraction or not whole:
        return None
    value = _integer(whole)
    if value is None:
        return None
    if not fraction:
        return Decimal(value)
    if any(c not in _DIGITS for c in fraction):
        return None
    return Decimal(f"{value}.{''.join(str(_DIGITS[c]) for c in fraction)}")
