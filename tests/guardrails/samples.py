"""Builders of valid mainland-China numbers (real formats, computed check digits) for tests."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st
from kimi_agent_tools.guardrails import id_card_check_digit, luhn_check_digit
from kimi_agent_tools.guardrails.checksums import PROVINCE_CODES

FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")

# Chinese filler that can stand next to a number: ideographs and Chinese punctuation.
FILLER = st.text(
    alphabet="您好请联系客服我的电话号码是身份证银行卡尾号谢谢收货地址退款，。！？、；：“”（）【】",
    max_size=12,
)


def id_card(area: str, born: dt.date, sequence: int) -> str:
    """A valid 18-character id number."""
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    return body + id_card_check_digit(body)


def bank_card(prefix: str, middle: str, length: int) -> str:
    """A Luhn-valid card number of `length` digits starting with `prefix`."""
    payload = (prefix + middle)[: length - 1].ljust(length - 1, "0")
    return payload + luhn_check_digit(payload)


phones = st.builds(
    lambda second, rest: "1" + second + rest,
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
)

id_cards = st.builds(
    id_card,
    st.builds(lambda p, rest: p + rest, st.sampled_from(sorted(PROVINCE_CODES)),
              st.text(alphabet="0123456789", min_size=4, max_size=4)),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)),
    st.integers(min_value=0, max_value=999),
)

bank_cards = st.builds(
    bank_card,
    st.sampled_from(["62", "621700", "622202", "4", "5", "9558", "35"]),
    st.text(alphabet="0123456789", min_size=18, max_size=18),
    st.integers(min_value=16, max_value=19),
)


def group(number: str, sizes: tuple[int, ...], sep: str) -> str:
    out, index = [], 0
    for size in sizes:
        out.append(number[index:index + size])
        index += size
    if index < len(number):
        out.append(number[index:])
    return sep.join(out)


def card_groups(number: str, sep: str = " ") -> str:
    return sep.join(number[i:i + 4] for i in range(0, len(number), 4))


def to_chinese(number: int) -> str:
    """An integer 1..99_999_999 in Chinese numerals, written as people write amounts."""
    digits = "零一二三四五六七八九"

    def section(n: int) -> str:
        out, zero = "", False
        for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
            d = n // value % 10
            if d == 0:
                zero = bool(out)
                continue
            if zero:
                out += "零"
                zero = False
            out += digits[d] + unit
        return out

    high, low = divmod(number, 10_000)
    if not high:
        text = section(low)
        return text[1:] if text.startswith("一十") else text
    text = section(high) + "万"
    if low:
        text += ("零" if low < 1000 else "") + section(low)
    return text[1:] if text.startswith("一十") else text
