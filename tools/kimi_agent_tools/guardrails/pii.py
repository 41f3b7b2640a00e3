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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kimi_agent_tools.guardrails._fold import fold_width
from kimi_agent_tools.guardrails._pii_scan import TAIL_CHARS, Match, NumberScanner, PiiKind
from kimi_agent_tools.guardrails.errors import GuardrailValueError
from kimi_agent_tools.guardrails.streaming import HeldBackStream

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

_CONTEXT = 16  # characters of left context a stream keeps (prefix "(+86) " and 2 more)


class PiiMasker:
    """Finds and masks phone, id-card and bank-card numbers; reusable and thread-safe.

    Args:
        kinds: which kinds to find (default `DEFAULT_KINDS`).
        keep: leading and trailing digits to leave visible, per kind (merged over
            `DEFAULT_KEEP`); ``(0, 0)`` hides every digit.
        mask_char: the character that replaces a hidden digit (one character).

    Raises:
        GuardrailValueError: an unknown kind, a negative keep count, or a `mask_char` that is
            not one character, or is a digit, ``X``, a separator or a sign used in numbers.
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
        if len(mask_char) != 1 or fold_width(mask_char) in TAIL_CHARS:
            raise GuardrailValueError(
                f"掩码字符必须是单个非数字字符：{mask_char!r}。mask_char must be one character "
                "that is not a digit, a separator or a sign used in numbers."
            )
        self.mask_char = mask_char
        self._scanner = NumberScanner(self.kinds, mask_char)

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
        for match in self._scanner.scan(folded):
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
        while index > 0 and folded[index - 1] in TAIL_CHARS:
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

    # ------------------------------------------------------------------ internals

    def _finding(self, text: str, folded: str, match: Match) -> PiiFinding:
        """The finding of `match`: digits from `digits_start` on are counted for `keep`
        (a country prefix stays as it is); separators are kept."""
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
