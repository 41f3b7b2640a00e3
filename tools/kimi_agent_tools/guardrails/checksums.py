"""Check digits of mainland-China identity numbers and bank cards, and the mobile-number rule.

校验位。The masker uses these to tell a real identifier from a number that merely has the
right length; they are public because a shop often needs the same checks on a form field,
and because tests need them to build valid samples.

- Resident identity card (居民身份证), GB 11643-1999: 17 digits — a 6-digit area code, the
  birth date ``YYYYMMDD`` and a 3-digit sequence number — then a check digit, ISO 7064
  MOD 11-2 (weights ``2**(17-i) mod 11``; a check value of 10 is written ``X``).
- Legacy 15-digit card (first generation, no longer valid since 2013): area code, ``YYMMDD``
  (19YY) and a sequence number, without check digit.
- Bank card: 16–19 digits ending in a Luhn check digit (the UnionPay and card-scheme rule).
- Mobile number (手机号): 11 digits ``1[3-9]xxxxxxxxx``.

All ``is_*`` functions accept any string and answer `False` for anything malformed.
"""

from __future__ import annotations

import datetime as _dt

from kimi_agent_tools.guardrails.errors import GuardrailValueError

__all__ = [
    "PROVINCE_CODES",
    "id_card_birth_date",
    "id_card_check_digit",
    "is_bank_card_number",
    "is_id_card_number",
    "is_legacy_id_card_number",
    "is_luhn_valid",
    "is_mobile_number",
    "luhn_check_digit",
]

PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15",  # 北京 天津 河北 山西 内蒙古
        "21", "22", "23",  # 辽宁 吉林 黑龙江
        "31", "32", "33", "34", "35", "36", "37",  # 上海 江苏 浙江 安徽 福建 江西 山东
        "41", "42", "43", "44", "45", "46",  # 河南 湖北 湖南 广东 广西 海南
        "50", "51", "52", "53", "54",  # 重庆 四川 贵州 云南 西藏
        "61", "62", "63", "64", "65",  # 陕西 甘肃 青海 宁夏 新疆
        "71", "81", "82", "83",  # 台湾 香港 澳门, 83: residence permits of Taiwan residents
    }
)
"""The first two digits (province level) of GB/T 2260 area codes used on identity cards."""

_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
_EARLIEST_BIRTH_YEAR = 1900


def id_card_check_digit(first17: str) -> str:
    """The GB 11643 check character ("0"–"9" or "X") for the first 17 digits of an id.

    Raises:
        GuardrailValueError: `first17` is not exactly 17 ASCII digits.
    """
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise GuardrailValueError(
            f"身份证号前 17 位必须是 17 个数字：{first17!r}。"
            f"An id-card payload must be 17 ASCII digits, got {first17!r}."
        )
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_card_birth_date(number: str) -> _dt.date | None:
    """The birth date written in an 18- or 15-digit id number, or `None` if it is no date.

    A date before 1900 or after today is not plausible and also gives `None`.
    """
    if len(number) == 18:
        year, month, day = number[6:10], number[10:12], number[12:14]
    elif len(number) == 15:
        year, month, day = "19" + number[6:8], number[8:10], number[10:12]
    else:
        return None
    if not (year + month + day).isdigit() or not (year + month + day).isascii():
        return None
    try:
        born = _dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    if born.year < _EARLIEST_BIRTH_YEAR or born > _dt.date.today():
        return None
    return born


def _area_ok(number: str) -> bool:
    # Foreigners' permanent-residence cards (2023 format) start with 9 and put the province
    # code in digits 2–3; resident cards start with the province code.
    if number[0] == "9":
        return number[1:3] in PROVINCE_CODES
    return number[:2] in PROVINCE_CODES


def is_id_card_number(number: str) -> bool:
    """Whether `number` is a well-formed 18-character identity number.

    Checked: 17 ASCII digits and a check character (``X`` in either case), a known province
    code, a plausible birth date and the GB 11643 check digit. A number that passes may still
    not be issued to anyone — the check catches typos and look-alikes, not forgeries.
    """
    if len(number) != 18 or not number.isascii():
        return False
    body, check = number[:17], number[17].upper()
    if not body.isdigit() or not (check.isdigit() or check == "X"):
        return False
    if not _area_ok(body) or id_card_birth_date(number) is None:
        return False
    return id_card_check_digit(body) == check


def is_legacy_id_card_number(number: str) -> bool:
    """Whether `number` looks like a 15-digit first-generation identity number.

    Only the province code and the birth date (``YYMMDD``, read as 19YY) can be checked:
    these numbers have no check digit, so about one random 15-digit number in a hundred
    passes. That is why the masker finds them only when asked to.
    """
    if len(number) != 15 or not number.isascii() or not number.isdigit():
        return False
    return _area_ok(number) and id_card_birth_date(number) is not None


def luhn_check_digit(payload: str) -> str:
    """The Luhn check digit to append to `payload` (all digits before the check digit).

    Raises:
        GuardrailValueError: `payload` is empty or not all ASCII digits.
    """
    if not payload or not payload.isascii() or not payload.isdigit():
        raise GuardrailValueError(
            f"卡号必须全是数字：{payload!r}。A Luhn payload must be ASCII digits, got {payload!r}."
        )
    return str((10 - _luhn_sum(payload + "0")) % 10)


def _luhn_sum(number: str) -> int:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10


def is_luhn_valid(number: str) -> bool:
    """Whether `number` (ASCII digits, at least 2) ends in a correct Luhn check digit."""
    if len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return _luhn_sum(number) == 0


_CARD_LEADING = frozenset("3456") | {"9"}
# First digits of card numbers in use in China: 62 UnionPay, 4 Visa, 5 Mastercard, 3 JCB and
# 9 for older domestic bank cards (e.g. 9558). The 2-series Mastercard range is left out:
# 16-digit numbers starting with 2 are mostly dates and order numbers (``2024…``).


def is_bank_card_number(number: str) -> bool:
    """Whether `number` looks like a bank-card number: 16–19 digits, Luhn-valid.

    The first digit must be one that card numbers used in China start with (3, 4, 5, 6, 9),
    which keeps most date-like order numbers (``2024…``, ``1…``) out.
    """
    return (
        16 <= len(number) <= 19
        and number[:1] in _CARD_LEADING
        and is_luhn_valid(number)
    )


def is_mobile_number(number: str) -> bool:
    """Whether `number` is an 11-digit mainland mobile number ``1[3-9]`` + 9 digits."""
    return (
        len(number) == 11
        and number.isascii()
        and number.isdigit()
        and number[0] == "1"
        and number[1] in "3456789"
    )
