"""A sensitive-word matcher for Chinese text: find, redact, or check on a stream.

敏感词。`SensitiveWords(["退款", "投诉"])` finds the words in a text however they are
written: full-width or half-width, upper or lower case, traditional or simplified characters
(common characters, see `normalize`), and with spaces or punctuation slipped in between the
characters (``退 款``, ``退-款``, ``投．訴``). Matches report the configured word and the
span in the *original* text; `redact` replaces each matched span with ``*`` (one per
character, so spans stay valid).

- Matching is Aho-Corasick over the normalised text: linear in the length of the text,
  whatever the number of words (thousands are fine; the automaton is built once).
- All matches are reported, overlapping ones included (``退款`` and ``款`` in ``退款``).
- ``max_gap`` (default 3) bounds the ignored characters between two characters of a word:
  ``退，款`` matches, but a word is not assembled across a whole sentence of punctuation.
- Words made of ASCII letters and digits (``vx``, ``qq``) only match as whole words by
  default (``qq群`` matches ``qq``, ``qqq`` does not); Chinese words match anywhere, since
  Chinese has no spaces between words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kimi_agent_tools.guardrails._aho import Automaton
from kimi_agent_tools.guardrails.errors import GuardrailValueError
from kimi_agent_tools.guardrails.normalize import normalize_char, normalize_for_matching
from kimi_agent_tools.guardrails.streaming import HeldBackStream

__all__ = ["RedactResult", "RedactStream", "SensitiveWords", "WordMatch"]

_CONTEXT = 4  # characters of left context a stream keeps (for the whole-word check)


@dataclass(frozen=True, slots=True)
class WordMatch:
    """One occurrence: the configured `word`, its span ``text[start:end]`` in the original
    text, and the word's `category` if the list gave one."""

    word: str
    start: int
    end: int
    category: str | None = None


@dataclass(frozen=True, slots=True)
class RedactResult:
    """The redacted text and the matches in the original (sorted by start)."""

    text: str
    matches: tuple[WordMatch, ...]

    @property
    def changed(self) -> bool:
        """Whether anything was redacted."""
        return bool(self.matches)


RedactStream = HeldBackStream[WordMatch]
"""The streaming filter returned by `SensitiveWords.stream()` (`feed`, `flush`, `findings`)."""


def _is_latin(char: str) -> bool:
    return char.isascii() and char.isalnum()


class SensitiveWords:
    """A compiled word list; immutable, reusable and thread-safe.

    Args:
        words: the words, or a mapping word → category (e.g. ``{"傻逼": "辱骂"}``). Words are
            normalised like the text, so ``"退 款"`` and ``"退款"`` are the same word (the
            first spelling is the one reported).
        max_gap: how many ignored characters (spaces, punctuation…) may stand between two
            characters of a word.
        mask_char: what `redact` writes for each character of a match.
        whole_latin_words: ASCII words match only when not touching other ASCII letters or
            digits.

    Raises:
        GuardrailValueError: a word that is not a string or is empty once normalised (only
            spaces and punctuation), a negative `max_gap`, or a `mask_char` that is not one
            character that the matcher ignores.
    """

    def __init__(
        self,
        words: Iterable[str] | Mapping[str, str],
        *,
        max_gap: int = 3,
        mask_char: str = "*",
        whole_latin_words: bool = True,
    ) -> None:
        if isinstance(words, str):
            raise GuardrailValueError(
                "敏感词应是词的列表而不是一个字符串。words must be a list of words, not one str."
            )
        categories: Mapping[str, str] = words if isinstance(words, Mapping) else {}
        self._words: list[str] = []
        self._categories: list[str | None] = []
        self._forms: list[str] = []
        for word in words:
            if not isinstance(word, str):
                raise GuardrailValueError(f"敏感词必须是字符串：{word!r}。Words must be str.")
            form = normalize_for_matching(word)
            if not form:
                raise GuardrailValueError(
                    f"敏感词 {word!r} 归一化后为空（只有空格或标点）。The word {word!r} is empty "
                    "once spaces, punctuation and symbols are ignored."
                )
            self._words.append(word)
            self._categories.append(categories.get(word))
            self._forms.append(form)
        if max_gap < 0:
            raise GuardrailValueError(f"max_gap 不能为负：{max_gap}。max_gap must be >= 0.")
        if len(mask_char) != 1 or normalize_char(mask_char):
            raise GuardrailValueError(
                f"掩码字符必须是单个标点或符号：{mask_char!r}。mask_char must be one character "
                "that the matcher ignores (punctuation or a symbol), so redacting is idempotent."
            )
        self.max_gap = max_gap
        self.mask_char = mask_char
        self.whole_latin_words = whole_latin_words
        self._automaton = Automaton((form, i) for i, form in enumerate(self._forms))

    @property
    def words(self) -> tuple[str, ...]:
        """The configured words, as given."""
        return tuple(self._words)

    def __len__(self) -> int:
        return len(self._words)

    # ------------------------------------------------------------------ public calls

    def find(self, text: str) -> list[WordMatch]:
        """Every occurrence of a word in `text`, sorted by start (longer first)."""
        matches, _ = self._scan(text)
        return matches

    def contains(self, text: str) -> bool:
        """Whether any word occurs in `text`."""
        return bool(self._scan(text)[0])

    def redact(self, text: str) -> RedactResult:
        """`text` with every character of every match replaced by `mask_char`."""
        matches = self.find(text)
        return RedactResult(self._apply(text, matches), tuple(matches))

    def holdback(self, text: str) -> int:
        """How many trailing characters of a partial `text` could still start a match.

        That is the longest tail of `text` that reads as the beginning of some word (with
        the ignored characters after it); everything before it is final. 0 when the text
        does not end inside a possible word.
        """
        return self._scan(text)[1]

    def stream(self) -> RedactStream:
        """A redacting filter for a streamed text: `feed(chunk)` returns what can be sent."""
        return HeldBackStream(
            scan=self.find,
            holdback=self.holdback,
            apply=self._apply,
            shift=lambda m, offset: dataclasses.replace(
                m, start=m.start + offset, end=m.end + offset
            ),
            context=_CONTEXT,
        )

    # ------------------------------------------------------------------ internals

    def _apply(self, text: str, matches: Iterable[WordMatch]) -> str:
        hidden = bytearray(len(text))
        for m in matches:
            hidden[m.start:m.end] = b"\x01" * (m.end - m.start)
        if not any(hidden):
            return text
        return "".join(self.mask_char if h else c for c, h in zip(text, hidden, strict=True))

    def _boundary_ok(self, text: str, start: int, end: int, form: str) -> bool:
        if not self.whole_latin_words:
            return True
        if _is_latin(form[0]) and start > 0:
            before = normalize_char(text[start - 1])
            if before and _is_latin(before[-1]):
                return False
        if _is_latin(form[-1]) and end < len(text):
            after = normalize_char(text[end])
            if after and _is_latin(after[0]):
                return False
        return True

    def _scan(self, text: str) -> tuple[list[WordMatch], int]:
        """All matches, and the holdback of `text` as a partial text."""
        automaton = self._automaton
        origin: list[int] = []  # original index of each normalised character
        matches: list[WordMatch] = []
        node = 0
        last_index = -1  # original index of the last normalised character
        for index, char in enumerate(text):
            for out in normalize_char(char):
                if last_index >= 0 and index - last_index - 1 > self.max_gap:
                    node = 0
                last_index = index
                origin.append(index)
                node = automaton.step(node, out)
                for hit in automaton.words_ending(node):
                    word_id = automaton.word_at[hit]
                    form = self._forms[word_id]
                    start = origin[len(origin) - automaton.depth[hit]]
                    if self._boundary_ok(text, start, index + 1, form):
                        matches.append(WordMatch(
                            self._words[word_id], start, index + 1, self._categories[word_id]
                        ))
        matches.sort(key=lambda m: (m.start, -m.end))
        if len(text) - last_index - 1 > self.max_gap:
            return matches, 0  # no word can continue across this many ignored characters
        if not (self.whole_latin_words and origin and _is_latin(_last_char(text, last_index))):
            # A match that is complete is final; hold only a tail that can still grow.
            while node and not automaton.goto[node]:
                node = automaton.fail[node]
        if node == 0:
            return matches, 0
        return matches, len(text) - origin[len(origin) - automaton.depth[node]]


def _last_char(text: str, index: int) -> str:
    """The last normalised character of ``text[index]`` ("" if it reads as nothing)."""
    out = normalize_char(text[index])
    return out[-1] if out else " "
