"""Reading numbers in (width-folded) text: which digit runs form a phone, id or card number.

The rules are described in `kimi_agent_tools.guardrails.pii`. A *chain* is a maximal sequence
of digit runs (*parts*) joined by single spaces or dashes; a number is one part or several
consecutive parts in a usual grouping, validated by its check digits, whose neighbours are
allowed by the boundary rules.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kimi_agent_tools.guardrails import checksums

__all__ = ["TAIL_CHARS", "Match", "NumberScanner", "PiiKind"]


class PiiKind(enum.StrEnum):
    """The kinds of personal numbers the masker knows."""

    PHONE = "phone"
    ID_CARD = "id_card"
    ID_CARD_15 = "id_card_15"
    BANK_CARD = "bank_card"


_CHAIN = re.compile(r"[0-9]+[Xx]?(?:[ \-][0-9]+[Xx]?)*")
_PART = re.compile(r"[0-9]+[Xx]?")
_PAREN_PREFIX = re.compile(r"\(\+86\) ?$")
TAIL_CHARS = frozenset("0123456789Xx -+()./:")
"""Every character whose arrival can change how the numbers before it are read (digits,
separators, prefix signs and the characters the boundary rules look at)."""

# Allowed groupings (lengths of the digit runs) for numbers written with separators.
_PHONE_GROUPS = ((11,), (3, 4, 4), (3, 8))
_ID18_GROUPS = ((18,), (6, 8, 4), (6, 4, 4, 4))
_ID15_GROUPS = ((15,), (6, 6, 3))
_SHORTEST = 11  # characters of the shortest number (a phone written without separators)
_FIRST_PART_LENGTHS = frozenset(
    {g[0] for g in _PHONE_GROUPS + _ID18_GROUPS + _ID15_GROUPS}
    | {g[0] + len(prefix) for g in _PHONE_GROUPS for prefix in ("86", "0086")}
    | {2, 4}  # a separate country prefix "86" / "0086", the first group of a card
    | set(range(16, 20))  # a card written without separators
)
"""How long the first digit run of a number can be; other runs are skipped at once."""


@dataclass(frozen=True, slots=True)
class _Part:
    start: int
    end: int
    digits: str


@dataclass(frozen=True, slots=True)
class Match:
    """A number found in a chain (indices into the folded text)."""

    kind: PiiKind
    first: int  # index of the first part of the number
    last: int  # index of the last part
    start: int  # span start (includes a country prefix)
    end: int  # span end
    digits_start: int  # where the digits that count for keep= start


def _bad_before(t: str, s: int, mask_char: str) -> bool:
    p1 = t[s - 1] if s >= 1 else ""
    p2 = t[s - 2] if s >= 2 else ""
    if p1 and ((p1.isascii() and p1.isalnum()) or p1 in "_*¥$" or p1 == mask_char):
        return True
    if p1 in (".", ":") and p2.isascii() and p2.isdigit():
        return True  # a decimal or a time: 3.13812345678, 12:13812345678
    # a code or a path: A-13812345678, item/13812345678 (but 13812345678/13912345678 is a list)
    return p1 in ("-", "/") and p2.isascii() and p2.isalpha()


def _bad_after(t: str, e: int, mask_char: str) -> bool:
    n1 = t[e] if e < len(t) else ""
    n2 = t[e + 1] if e + 1 < len(t) else ""
    if n1 and ((n1.isascii() and n1.isalnum()) or n1 in "_*%" or n1 == mask_char):
        return True
    if n1 in (".", ":") and n2.isascii() and n2.isdigit():
        return True
    return n1 in ("-", "/") and n2.isascii() and n2.isalpha()


class NumberScanner:
    """Finds the numbers of the enabled kinds; `mask_char` marks text already masked."""

    def __init__(self, kinds: frozenset[PiiKind], mask_char: str) -> None:
        self.kinds = kinds
        self.mask_char = mask_char

    def scan(self, folded: str) -> list[Match]:
        """The numbers in `folded` (a width-folded text), in order, not overlapping."""
        found: list[Match] = []
        for chain in _CHAIN.finditer(folded):
            found.extend(self._matches(folded, chain.start(), chain.end()))
        return found

    def _matches(self, t: str, start: int, end: int) -> list[Match]:
        if end - start < _SHORTEST:
            return []  # dates, times, quantities: too short for any number
        parts = [
            _Part(m.start(), m.end(), m.group())
            for m in _PART.finditer(t, start, end)
        ]
        seps = [t[parts[i].end] for i in range(len(parts) - 1)]
        edge_ok = (not _bad_before(t, start, self.mask_char),
                   not _bad_after(t, end, self.mask_char))
        found: list[Match] = []
        i = 0
        while i < len(parts):
            if len(parts[i].digits) not in _FIRST_PART_LENGTHS:
                i += 1
                continue
            match = self._match_at(t, parts, seps, i, edge_ok)
            if match is None:
                i += 1
            else:
                found.append(match)
                i = match.last + 1
        return found

    def _match_at(
        self, t: str, parts: Sequence[_Part], seps: Sequence[str], i: int,
        edge_ok: tuple[bool, bool],
    ) -> Match | None:
        kinds = self.kinds
        if PiiKind.ID_CARD in kinds:
            for groups in _ID18_GROUPS:
                m = self._grouped(parts, seps, i, groups, edge_ok, PiiKind.ID_CARD,
                                  checksums.is_id_card_number)
                if m:
                    return m
        if PiiKind.BANK_CARD in kinds:
            m = self._card(parts, seps, i, edge_ok)
            if m:
                return m
        if PiiKind.ID_CARD_15 in kinds:
            for groups in _ID15_GROUPS:
                m = self._grouped(parts, seps, i, groups, edge_ok, PiiKind.ID_CARD_15,
                                  checksums.is_legacy_id_card_number)
                if m:
                    return m
        if PiiKind.PHONE in kinds:
            return self._phone(t, parts, seps, i, edge_ok)
        return None

    @staticmethod
    def _neighbours_ok(
        seps: Sequence[str], first: int, last: int, count: int, edge_ok: tuple[bool, bool],
        *, forbid: str = "",
    ) -> bool:
        """A number inside a chain may touch other runs only through a space (not a dash,
        which joins codes and dates), and never through `forbid` (the number's own
        separator, for groupings that could go on)."""
        def joined_ok(sep: str) -> bool:
            return sep == " " and sep != forbid

        before = edge_ok[0] if first == 0 else joined_ok(seps[first - 1])
        after = edge_ok[1] if last == count - 1 else joined_ok(seps[last])
        return before and after

    def _grouped(
        self, parts: Sequence[_Part], seps: Sequence[str], i: int, groups: tuple[int, ...],
        edge_ok: tuple[bool, bool], kind: PiiKind, valid: Callable[[str], bool],
    ) -> Match | None:
        last = i + len(groups) - 1
        if last >= len(parts):
            return None
        lengths = tuple(len(p.digits) for p in parts[i:last + 1])
        if lengths != groups or len(set(seps[i:last])) > 1:
            return None
        digits = "".join(p.digits for p in parts[i:last + 1])
        if not valid(digits) or not self._neighbours_ok(seps, i, last, len(parts), edge_ok):
            return None
        return Match(kind, i, last, parts[i].start, parts[last].end, parts[i].start)

    def _card(
        self, parts: Sequence[_Part], seps: Sequence[str], i: int, edge_ok: tuple[bool, bool],
    ) -> Match | None:
        one_part = parts[i]
        one = one_part.digits
        if checksums.is_bank_card_number(one) and self._neighbours_ok(
            seps, i, i, len(parts), edge_ok
        ):
            return Match(PiiKind.BANK_CARD, i, i, one_part.start, one_part.end, one_part.start)
        # Groups of four, the last group 1-4 digits, all joined by the same separator.
        if len(one) != 4 or i >= len(seps):
            return None
        if i > 0 and len(parts[i - 1].digits) == 4 and seps[i - 1] == seps[i]:
            return None  # the groups of four started earlier: this is no card's first group
        digits, last = one, i
        while last + 1 < len(parts) and len(digits) < 19 and seps[last] == seps[i]:
            nxt = parts[last + 1].digits
            if len(nxt) > 4 or len(digits) + len(nxt) > 19:
                break
            digits += nxt
            last += 1
            if len(nxt) < 4:
                break
        if last == i or not checksums.is_bank_card_number(digits):
            return None
        if not self._neighbours_ok(seps, i, last, len(parts), edge_ok, forbid=seps[i]):
            return None
        return Match(PiiKind.BANK_CARD, i, last, parts[i].start, parts[last].end, parts[i].start)

    def _phone(
        self, t: str, parts: Sequence[_Part], seps: Sequence[str], i: int,
        edge_ok: tuple[bool, bool],
    ) -> Match | None:
        one = parts[i]
        plus = i == 0 and one.start > 0 and t[one.start - 1] == "+"
        # A country prefix written as its own run: "+86 138…", "0086-138…".
        prefix_ok = edge_ok[0] if i == 0 else seps[i - 1] == " "
        if (one.digits == "0086" or (one.digits == "86" and plus)) and i + 1 < len(parts) \
                and prefix_ok:
            for groups in _PHONE_GROUPS:
                m = self._phone_groups(parts, seps, i + 1, groups, edge_ok, glued="",
                                       after_prefix=True)
                if m:
                    return dataclasses.replace(m, first=i, start=one.start - (1 if plus else 0))
        # A country prefix glued to the number ("+8613812345678", "0086138 1234 5678"), or none.
        for glued in ("86", "0086", "") if plus else ("0086", ""):
            for groups in _PHONE_GROUPS:
                wide = (groups[0] + len(glued), *groups[1:])
                m = self._phone_groups(parts, seps, i, wide, edge_ok, glued=glued,
                                       after_prefix=False)
                if m is None:
                    continue
                if glued == "86":
                    return dataclasses.replace(m, start=m.start - 1)
                paren = (_PAREN_PREFIX.search(t, max(0, m.start - 6), m.start)
                         if i == 0 and not glued else None)
                return dataclasses.replace(m, start=paren.start()) if paren else m
        return None

    def _phone_groups(
        self, parts: Sequence[_Part], seps: Sequence[str], i: int, groups: tuple[int, ...],
        edge_ok: tuple[bool, bool], *, glued: str, after_prefix: bool,
    ) -> Match | None:
        last = i + len(groups) - 1
        if last >= len(parts):
            return None
        if tuple(len(p.digits) for p in parts[i:last + 1]) != groups:
            return None
        if len(set(seps[i:last])) > 1:
            return None
        digits = "".join(p.digits for p in parts[i:last + 1])
        if not digits.startswith(glued) or not checksums.is_mobile_number(digits[len(glued):]):
            return None
        after = edge_ok[1] if last == len(parts) - 1 else seps[last] == " "
        before = True if after_prefix else (edge_ok[0] if i == 0 else seps[i - 1] == " ")
        if not (before and after):
            return None
        start = parts[i].start
        return Match(PiiKind.PHONE, i, last, start, parts[last].end, start + len(glued))

