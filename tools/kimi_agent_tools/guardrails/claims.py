"""Find what an answer states that no tool confirmed: money amounts and order/refund ids.

未经工具确认的承诺。A customer-service answer must not promise "已为您退款 ¥89.00" unless
a tool said 89.00, nor name a refund ``RF000003`` that no tool returned. `unconfirmed_claims`
lists the amounts and ids in the answer that appear in none of the tool results of the run.

**Amounts** are read in the forms Chinese answers use: ``¥89.00``, ``￥89``, ``89元``,
``89.5 元``, ``89块钱``/``89块`` (but ``3块电池`` counts pieces), ``RMB 89``, ``CNY 89``,
``人民币89元``, ``1,299.00元``, ``1.2万元`` (12000), and Chinese numerals followed by 元/块:
``八十九元``, ``一百二十块钱``, ``捌拾玖元整``, ``八十九元五角`` (89.5). A bare number
without a currency sign or 元 is not an amount. Amounts compare by value: ``¥89`` is
confirmed by ``"89.00"``, by ``89.0`` in a JSON result or by ``89元`` in a tool's text.

**Ids** are, by default, 1–4 capital letters, an optional dash and at least 4 digits
(``A1024``, ``RF000003``, ``TK000001``, ``SF1234567890``); compared without case and dash.
Pass another `reference_pattern` for other id formats.

**What confirms.** Every tool result is searched: strings (JSON text included), numbers, and
the values inside dicts and lists. `known` adds texts that also count, typically the
customer's own messages (an answer may repeat the amount the customer asked for). An amount
the model computed (a total of two items, a difference) is unconfirmed unless a tool — e.g.
`calculate` — returned it; that is the point of the check.

**Streaming.** `ClaimChecker.holdback(text)` says how many trailing characters of a partial
answer may still belong to a claim; the claims of the text before them are final.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kimi_agent_tools.guardrails._cn_numbers import CN_NUMERAL_CHARS, parse_chinese_number
from kimi_agent_tools.guardrails._fold import fold_width
from kimi_agent_tools.guardrails.errors import GuardrailValueError

__all__ = [
    "DEFAULT_REFERENCE_PATTERN",
    "Claim",
    "ClaimChecker",
    "ClaimKind",
    "find_claims",
    "unconfirmed_claims",
]

DEFAULT_REFERENCE_PATTERN = r"(?<![A-Za-z0-9])(?!RMB|CNY)[A-Z]{1,4}-?\d{4,}(?![A-Za-z0-9])"
"""Order, refund, ticket and tracking ids: ``A1024``, ``RF000003``, ``TK-000001``."""


class ClaimKind(enum.StrEnum):
    """What an answer can claim."""

    AMOUNT = "amount"
    REFERENCE = "reference"


@dataclass(frozen=True, slots=True)
class Claim:
    """One amount or id stated by the answer.

    `text` is how the answer wrote it and ``answer[start:end]`` its span; `value` is the
    canonical form compared with the tool results: the amount in yuan as a plain decimal
    (``"89"``, ``"89.5"``, ``"12000"``) or the id upper-cased without dashes (``"RF000003"``).
    """

    kind: ClaimKind
    text: str
    start: int
    end: int
    value: str


_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# 块 is also the measure word of pieces (两块蛋糕, 3块电池): it is money when 钱 follows, or no
# Chinese character but a sentence particle (退您50块。/ 50块吧 / 50块的券).
_KUAI = r"块(?:钱|(?![\u4e00-\u9fff])|(?=[吧呢啊呀哦嘛了的]))"
_YUAN = rf"(?:元整|元|{_KUAI}|圆)"
_CN = f"[{CN_NUMERAL_CHARS}]+"
_CN_DIGIT = "[零〇一二两三四五六七八九壹贰叁肆伍陆柒捌玖]"
_AMOUNT_PREFIXED = re.compile(
    rf"(?:¥|RMB|CNY|人民币)\s*(?P<num>{_NUM})(?:\s*(?P<big>万|亿))?(?:\s*{_YUAN})?"
)
_AMOUNT_SUFFIXED = re.compile(rf"(?<![A-Za-z0-9.,])(?P<num>{_NUM})\s*(?P<big>万|亿)?\s*{_YUAN}")
_AMOUNT_CHINESE = re.compile(
    rf"(?<![{CN_NUMERAL_CHARS}])(?:人民币)?(?P<cn>{_CN})(?:元|{_KUAI}|圆)"
    rf"(?:(?P<jiao>{_CN_DIGIT})角)?(?:(?P<fen>{_CN_DIGIT})分)?整?"
)
# Numbers in tool text; not parts of ids, dates or times ("A1024", "2024-01-15", "13:45").
_NUMBER_LITERAL = re.compile(rf"(?<![A-Za-z0-9.,:/-])(?:{_NUM})(?![0-9]|[:/-][0-9])")
_BIG = {"万": Decimal(10**4), "亿": Decimal(10**8)}
_TAIL_CHARS = frozenset(
    "0123456789.,¥ -" + CN_NUMERAL_CHARS + "元块钱圆角分整人民币"
    + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimal(num: str) -> Decimal | None:
    try:
        return Decimal(num.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex only lets numbers through
        return None


def _amounts(answer: str) -> list[Claim]:
    folded = fold_width(answer)
    candidates: list[tuple[int, int, int, Decimal]] = []  # start, -end, pattern rank, value
    for rank, pattern in enumerate((_AMOUNT_PREFIXED, _AMOUNT_SUFFIXED)):
        for m in pattern.finditer(folded):
            value = _decimal(m["num"])
            if value is not None:
                if m["big"]:
                    value *= _BIG[m["big"]]
                candidates.append((m.start(), -m.end(), rank, value))
    for m in _AMOUNT_CHINESE.finditer(folded):
        value = parse_chinese_number(m["cn"])
        if value is not None:
            for part, scale in (("jiao", Decimal("0.1")), ("fen", Decimal("0.01"))):
                if m[part]:
                    value += (parse_chinese_number(m[part]) or 0) * scale
            candidates.append((m.start(), -m.end(), 2, value))
    claims: list[Claim] = []
    covered = 0  # overlapping readings: the one that starts first (then the longest) wins
    for start, neg_end, _, value in sorted(candidates, key=lambda c: c[:3]):
        if start >= covered:
            claims.append(Claim(ClaimKind.AMOUNT, answer[start:-neg_end], start, -neg_end,
                                _canonical(value)))
            covered = -neg_end
    return claims


class ClaimChecker:
    """Collects the tool results of a run and checks answers against them.

    Args:
        tool_results: results seen so far (strings, JSON text, numbers, dicts, lists).
        known: other texts that count as confirmation (e.g. the customer's messages).
        reference_pattern: the regular expression of ids (`DEFAULT_REFERENCE_PATTERN`).

    Raises:
        GuardrailValueError: `reference_pattern` is not a valid regular expression.
    """

    def __init__(
        self,
        tool_results: Iterable[object] = (),
        *,
        known: Iterable[str] = (),
        reference_pattern: str = DEFAULT_REFERENCE_PATTERN,
    ) -> None:
        try:
            self._reference = re.compile(reference_pattern)
            self._reference_any_case = re.compile(reference_pattern, re.IGNORECASE)
        except re.error as error:
            raise GuardrailValueError(
                f"编号正则无效：{reference_pattern!r}（{error}）。"
                f"reference_pattern is not a valid regular expression: {error}."
            ) from error
        self._amounts: set[str] = set()
        self._references: set[str] = set()
        for result in tool_results:
            self.add(result)
        for text in known:
            self._add_text(text)

    def add(self, result: object) -> None:
        """Add one tool result (during a run, as each tool call finishes)."""
        if result is None or isinstance(result, bool):
            return
        if isinstance(result, int | float | Decimal):
            self._add_number(result)
        elif isinstance(result, str):
            self._add_text(result)
            stripped = result.strip()
            if stripped[:1] in ("{", "[", '"'):
                with contextlib.suppress(ValueError):  # text that merely starts like JSON
                    self.add(json.loads(stripped))
        elif isinstance(result, Mapping):
            for value in result.values():
                self.add(value)
        elif isinstance(result, list | tuple | set | frozenset):
            for value in result:
                self.add(value)
        else:
            self._add_text(str(result))

    def _add_number(self, number: int | float | Decimal) -> None:
        try:
            value = Decimal(str(number))
        except InvalidOperation:
            return
        if value.is_finite():
            self._amounts.add(_canonical(value))

    def _add_text(self, text: str) -> None:
        folded = fold_width(text)
        for m in _NUMBER_LITERAL.finditer(folded):
            value = _decimal(m.group())
            if value is not None:
                self._amounts.add(_canonical(value))
        for claim in _amounts(text):
            self._amounts.add(claim.value)
        for m in self._reference_any_case.finditer(folded):
            self._references.add(_reference_value(m.group()))

    def claims(self, answer: str) -> list[Claim]:
        """Every amount and id the answer states, in order of position."""
        claims = _amounts(answer)
        in_amount = bytearray(len(answer) + 1)
        for c in claims:
            in_amount[c.start:c.end] = b"\x01" * (c.end - c.start)
        for m in self._reference.finditer(fold_width(answer)):
            if not any(in_amount[m.start():m.end()]):  # "RMB1000" is an amount, not an id
                claims.append(Claim(ClaimKind.REFERENCE, answer[m.start():m.end()],
                                    m.start(), m.end(), _reference_value(m.group())))
        return sorted(claims, key=lambda c: c.start)

    def is_confirmed(self, claim: Claim) -> bool:
        """Whether some tool result (or known text) contains the claim's value."""
        pool = self._amounts if claim.kind is ClaimKind.AMOUNT else self._references
        return claim.value in pool

    def unconfirmed(self, answer: str) -> list[Claim]:
        """The claims of `answer` that no tool result confirms, in order of position."""
        return [c for c in self.claims(answer) if not self.is_confirmed(c)]

    @staticmethod
    def holdback(text: str) -> int:
        """How many trailing characters of a partial answer may still be part of a claim."""
        folded = fold_width(text)
        index = len(folded)
        while index > 0 and folded[index - 1] in _TAIL_CHARS:
            index -= 1
        return len(folded) - index


def _reference_value(text: str) -> str:
    return text.upper().replace("-", "")


def find_claims(answer: str, *, reference_pattern: str = DEFAULT_REFERENCE_PATTERN) -> list[Claim]:
    """Every amount and id stated in `answer`, confirmed or not.

    Raises:
        GuardrailValueError: `reference_pattern` is not a valid regular expression.
    """
    return ClaimChecker(reference_pattern=reference_pattern).claims(answer)


def unconfirmed_claims(
    answer: str,
    tool_results: Iterable[object],
    *,
    known: Iterable[str] = (),
    reference_pattern: str = DEFAULT_REFERENCE_PATTERN,
) -> list[Claim]:
    """The amounts and ids in `answer` that appear in none of `tool_results` (nor `known`).

    Raises:
        GuardrailValueError: `reference_pattern` is not a valid regular expression.
    """
    checker = ClaimChecker(tool_results, known=known, reference_pattern=reference_pattern)
    return checker.unconfirmed(answer)
