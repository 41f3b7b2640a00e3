"""Masking of mainland-China phone numbers, identity-card numbers and bank-card numbers.

个人信息脱敏。`mask_pii(text)` returns the text with each number found partly replaced by
``*`` and the list of findings (kind and span). What is found:

| kind | what | masked (default) |
|---|---|---|
| `PHONE` | mobile ``1[3-9]`` + 9 digits, optional ``+86``/``0086``/``(+86)`` | ``138****5678`` |
| `ID_CARD` | 18 characters, GB 11643 check digit, plausible birth date | ``110101********123X`` |
| `BANK_CARD` | 16–19 digits, Luhn-valid, first digit 3/4/5/6/9 | ``6222 **** **** 1234`` |
| `ID_CARD_15` | legacy 15-digit id (opt-in, see below) | ``110101******123`` |

The default keeps the first 3 and last 4 digits of a phone number (the usual Chinese display),
the 6-digit area code and last 4 characters of an id (the birth date is hidden), and the
first and last 4 digits of a card. `keep=` changes this per kind. Separators are kept and
the replacement has the length of the original, so a span is valid in both texts and
masking a masked text changes nothing.

**How a number is read.** Full-width digits (``１３８…``), signs and spaces count as their
ASCII forms. A number is a run of digits, or several runs joined by single spaces or dashes in
a usual grouping: ``138 1234 5678``, ``138-1234-5678``, ``110101 19900307 123X``,
``6222 0212 3456 7890 123`` (groups of four). A match always takes whole digit runs, so digits
inside a longer run are never masked.

**What is left alone** (near-misses): order numbers and codes touching letters (``A1024``,
``SN13812345678``), numbers with a wrong check digit, 11 digits not starting ``1[3-9]``, parts
of longer digit runs, runs joined by a dash to more digits (``2024-13812345678``), decimals
(``13812345678.50``), thousands (``13,812,345,678``), amounts after a currency sign
(``¥13812345678``), percentages, dates and times (``2024-01-15 13:45``), and text already
masked (a run touching ``*``).

**Legacy ids** have no check digit: about one random 15-digit number in a hundred has a
valid province code and birth date, so `ID_CARD_15` is not in `DEFAULT_KINDS`.

**Known limits.** A 16–19 digit order number that happens to be Luhn-valid and to start with
3/4/5/6/9 is masked as a card (the masker cannot know it is an order number; keep such ids
letter-prefixed, as the demo shop does). Landline numbers are not masked.

**Streaming.** `PiiMasker.holdback(text)` tells how many trailing characters of a partial text
could still change; `PiiMasker.stream()` returns a filter that sends everything before them.
Only a trailing run of digits, separators and the characters around numbers (``+ ( ) . / :
X``) is held, so ordinary Chinese text is never delayed.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kimi_agent_tools.guardrails import checksums
from kimi_agent_tools.guardrails._fold import fold_width
from kimi_agent_tools.guardrails._stream import HeldBackStream
from kimi_agent_tools.guardrails.errors import GuardrailValueError

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_KINDS",
    "MaskResult",
    "MaskStream",
    "PiiFinding",
    "PiiKind",
    "PiiMasker",
    "mask_pii",
]


class PiiKind(enum.StrEnum):
    """The kinds of personal numbers the masker knows."""

    PHONE = "phone"
    ID_CARD = "id_card"
    ID_CARD_15 = "id_card_15"
    BANK_CARD = "bank_card"


DEFAULT_KINDS: frozenset[PiiKind] = frozenset({PiiKind.PHONE, PiiKind.ID_CARD, PiiKind.BANK_CARD})
"""What `mask_pii` and `PiiMasker()` find: everything except legacy 15-digit ids."""

DEFAULT_KEEP: Mapping[PiiKind, tuple[int, int]] = {
    PiiKind.PHONE: (3, 4),
    PiiKind.ID_CARD: (6, 4),
    PiiKind.ID_CARD_15: (6, 3),
    PiiKind.BANK_CARD: (4, 4),
}
"""Leading and trailing digits left visible, per kind."""


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One number found: its kind, its span ``text[start:end]`` and what replaced it.

    The span covers the whole number as written, including separators and a country prefix
    (``+86 138 1234 5678``); `masked` has the same length. The original value is
    ``text[start:end]`` of the text that was masked — it is not copied here, so findings
    can be logged without leaking the number.
    """

    kind: PiiKind
    start: int
    end: int
    masked: str


@dataclass(frozen=True, slots=True)
class MaskResult:
    """The masked text and what was found in it (in order of position)."""

    text: str
    findings: tuple[PiiFinding, ...]

    @property
    def changed(self) -> bool:
        """Whether anything was masked."""
        return bool(self.findings)

    @property
    def kinds(self) -> frozenset[PiiKind]:
        """The kinds found."""
        return frozenset(f.kind for f in self.findings)


MaskStream = HeldBackStream[PiiFinding]
"""The streaming filter returned by `PiiMasker.stream()` (`feed`, `flush`, `findings`)."""

_CHAIN = re.compile(r"[0-9]+[Xx]?(?:[ \-][0-9]+[Xx]?)*")
_PART = re.compile(r"[0-9]+[Xx]?")
_PAREN_PREFIX = re.compile(r"\(\+86\) ?$")
_TAIL_CHARS = frozenset("0123456789Xx -+()./:")
_CONTEXT = 16  # characters of left context a stream keeps (prefix "(+86) " and 2 more)

# Allowed groupings (lengths of the digit runs) for numbers written with separators.
_PHONE_GROUPS = ((11,), (3, 4, 4), (3, 8))
_ID18_GROUPS = ((18,), (6, 8, 4), (6, 4, 4, 4))
_ID15_GROUPS = ((15,), (6, 6, 3))


@dataclass(frozen=True, slots=True)
class _Part:
    start: int
    end: int
    digits: str


@dataclass(frozen=True, slots=True)
class _Match:
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


class PiiMasker:
    """Finds and masks phone, id-card and bank-card numbers; reusable and thread-safe.

    Args:
        kinds: which kinds to find (default `DEFAULT_KINDS`).
        keep: leading and trailing digits to leave visible, per kind (merged over
            `DEFAULT_KEEP`); ``(0, 0)`` hides every digit.
        mask_char: the character that replaces a hidden digit (one character).

    Raises:
        GuardrailValueError: an unknown kind, a negative keep count, or a `mask_char` that is
            not a single non-digit character.
    """

    def __init__(
        self,
        kinds: Iterable[PiiKind | str] = DEFAULT_KINDS,
        *,
        keep: Mapping[PiiKind | str, tuple[int, int]] | None = None,
        mask_char: str = "*",
    ) -> None:
        self.kinds = frozenset(self._kind(k) for k in kinds)
        merged = dict(DEFAULT_KEEP)
        for kind, counts in (keep or {}).items():
            lead, trail = counts
            if lead < 0 or trail < 0:
                raise GuardrailValueError(
                    f"保留位数不能为负：{kind}={counts!r}。keep counts must be >= 0."
                )
            merged[self._kind(kind)] = (lead, trail)
        self.keep: Mapping[PiiKind, tuple[int, int]] = merged
        if len(mask_char) != 1 or fold_width(mask_char) in _TAIL_CHARS:
            raise GuardrailValueError(
                f"掩码字符必须是单个非数字字符：{mask_char!r}。mask_char must be one character "
                "that is not a digit, a separator or a sign used in numbers."
            )
        self.mask_char = mask_char

    @staticmethod
    def _kind(kind: PiiKind | str) -> PiiKind:
        try:
            return PiiKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in PiiKind)
            raise GuardrailValueError(
                f"未知的信息类型：{kind!r}。Unknown PII kind {kind!r}; known: {known}."
            ) from None

    # ------------------------------------------------------------------ public calls

    def find(self, text: str) -> list[PiiFinding]:
        """The numbers in `text`, in order; spans refer to `text`."""
        folded = fold_width(text)
        findings: list[PiiFinding] = []
        for chain in _CHAIN.finditer(folded):
            for match in self._matches(folded, chain.start(), chain.end()):
                findings.append(self._finding(text, folded, match))
        return findings

    def mask(self, text: str) -> MaskResult:
        """`text` with every number found masked, and the findings."""
        findings = self.find(text)
        return MaskResult(_apply(text, findings), tuple(findings))

    def holdback(self, text: str) -> int:
        """How many trailing characters of a partial `text` more text could still change.

        Everything before them masks the same whatever follows; a streamed answer can send
        it. Only digits, separators and the signs around numbers are ever held, so for
        ordinary prose the answer is 0.
        """
        folded = fold_width(text)
        index = len(folded)
        while index > 0 and folded[index - 1] in _TAIL_CHARS:
            index -= 1
        return len(folded) - index

    def stream(self) -> MaskStream:
        """A filter for a streamed text: `feed(chunk)` returns what can be sent now."""
        return HeldBackStream(
            scan=self.find,
            holdback=self.holdback,
            apply=_apply,
            shift=lambda f, offset: dataclasses.replace(
                f, start=f.start + offset, end=f.end + offset
            ),
            context=_CONTEXT,
        )

    # ------------------------------------------------------------------ matching

    def _matches(self, t: str, start: int, end: int) -> list[_Match]:
        parts = [
            _Part(m.start(), m.end(), m.group())
            for m in _PART.finditer(t, start, end)
        ]
        seps = [t[parts[i].end] for i in range(len(parts) - 1)]
        edge_ok = (not _bad_before(t, start, self.mask_char),
                   not _bad_after(t, end, self.mask_char))
        found: list[_Match] = []
        i = 0
        while i < len(parts):
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
    ) -> _Match | None:
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
    ) -> _Match | None:
        last = i + len(groups) - 1
        if last >= len(parts):
            return None
        lengths = tuple(len(p.digits) for p in parts[i:last + 1])
        if lengths != groups or len(set(seps[i:last])) > 1:
            return None
        digits = "".join(p.digits for p in parts[i:last + 1])
        if not valid(digits) or not self._neighbours_ok(seps, i, last, len(parts), edge_ok):
            return None
        return _Match(kind, i, last, parts[i].start, parts[last].end, parts[i].start)

    def _card(
        self, parts: Sequence[_Part], seps: Sequence[str], i: int, edge_ok: tuple[bool, bool],
    ) -> _Match | None:
        one_part = parts[i]
        one = one_part.digits
        if checksums.is_bank_card_number(one) and self._neighbours_ok(
            seps, i, i, len(parts), edge_ok
        ):
            return _Match(PiiKind.BANK_CARD, i, i, one_part.start, one_part.end, one_part.start)
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
        return _Match(PiiKind.BANK_CARD, i, last, parts[i].start, parts[last].end, parts[i].start)

    def _phone(
        self, t: str, parts: Sequence[_Part], seps: Sequence[str], i: int,
        edge_ok: tuple[bool, bool],
    ) -> _Match | None:
        one = parts[i]
        plus = i == 0 and one.start > 0 and t[one.start - 1] == "+"
        # A country prefix written as its own run: "+86 138…", "0086-138…".
        if (one.digits == "0086" or (one.digits == "86" and plus)) and i + 1 < len(parts):
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
                paren = _PAREN_PREFIX.search(t, 0, m.start) if i == 0 and not glued else None
                return dataclasses.replace(m, start=paren.start()) if paren else m
        return None

    def _phone_groups(
        self, parts: Sequence[_Part], seps: Sequence[str], i: int, groups: tuple[int, ...],
        edge_ok: tuple[bool, bool], *, glued: str, after_prefix: bool,
    ) -> _Match | None:
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
        return _Match(PiiKind.PHONE, i, last, start, parts[last].end, start + len(glued))

    def _finding(self, text: str, folded: str, match: _Match) -> PiiFinding:
        end = match.end
        lead, trail = self.keep[match.kind]
        count = sum(1 for c in folded[match.digits_start:end] if c.isdigit() or c in "Xx")
        out = list(text[match.start:end])
        seen = 0
        for index in range(match.digits_start - match.start, len(out)):
            c = folded[match.start + index]
            if c.isdigit() or c in "Xx":
                if lead <= seen < count - trail:
                    out[index] = self.mask_char
                seen += 1
        return PiiFinding(match.kind, match.start, end, "".join(out))



def _apply(text: str, findings: Sequence[PiiFinding]) -> str:
    out: list[str] = []
    position = 0
    for f in findings:
        out.append(text[position:f.start])
        out.append(f.masked)
        position = f.end
    out.append(text[position:])
    return "".join(out)


_DEFAULT = PiiMasker()


def mask_pii(text: str, kinds: Iterable[PiiKind | str] | None = None) -> MaskResult:
    """Mask phone, id-card and bank-card numbers in `text` with the default settings.

    `kinds` limits or extends what is found (e.g. ``[PiiKind.PHONE]``, or
    ``[*DEFAULT_KINDS, PiiKind.ID_CARD_15]``).

    Raises:
        GuardrailValueError: an unknown kind.
    """
    masker = _DEFAULT if kinds is None else PiiMasker(kinds)
    return masker.mask(text)
