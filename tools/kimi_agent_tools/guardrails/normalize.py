"""The normal form sensitive words are matched in.

归一化。Each character of a text is, in this order:

1. compatibility-folded (NFKC, one character at a time): full-width ``ＡＢＣ１２３`` becomes
   ``abc123`` after step 2, circled ``①`` becomes ``1``, ``㈱`` becomes ``(株)``;
2. case-folded (``Ｖｘ`` → ``vx``, ``ß`` → ``ss``);
3. written in simplified characters where the built-in table (`_t2s.T2S`, about 900 common
   characters) knows the character (``退款專線`` → ``退款专线``);
4. dropped if it is a separator, punctuation, symbol, control or combining mark (Unicode
   categories Z*, P*, S*, C*, Mn, Me), so ``退 款``, ``退-款``, ``退·款`` and ``退\u200b款`` all
   read ``退款``.

Working one character at a time keeps every normalised character tied to the original
character it came from, so a match reports its span in the original text. (NFKC composition
across characters, e.g. ``e`` + combining accent → ``é``, is therefore not performed; the
combining mark is dropped instead.)
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator

from kimi_agent_tools.guardrails._t2s import T2S

__all__ = ["is_ignored", "normalize_char", "normalize_for_matching", "normalized_chars"]

_IGNORED_MAJOR = frozenset("ZPSC")
_IGNORED_MINOR = frozenset({"Mn", "Me"})


def is_ignored(char: str) -> bool:
    """Whether a (normalised) character is skipped when matching: a space, punctuation,
    symbol, control/format character or combining mark."""
    category = unicodedata.category(char)
    return category[0] in _IGNORED_MAJOR or category in _IGNORED_MINOR


@functools.lru_cache(maxsize=8192)
def normalize_char(char: str) -> str:
    """What one original character reads as when matching: 0, 1 or more characters."""
    folded = unicodedata.normalize("NFKC", char).casefold()
    return "".join(T2S.get(c, c) for c in folded if not is_ignored(c))


def normalized_chars(text: str) -> Iterator[tuple[str, int]]:
    """The normalised characters of `text`, each with the index of its original character."""
    for index, char in enumerate(text):
        for out in normalize_char(char):
            yield out, index


def normalize_for_matching(text: str) -> str:
    """`text` in the form words are matched in (see the module docstring)."""
    return "".join(normalize_char(char) for char in text)
