"""The sensitive-word matcher: normalised matching, spans in the original, redaction, streams."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from kimi_agent_tools.guardrails import (
    GuardrailValueError,
    SensitiveWords,
    WordMatch,
    normalize_for_matching,
)
from kimi_agent_tools.guardrails._t2s import T2S

from kimi_agent.errors import KimiAgentError

WORDS = {"退款": "售后", "投诉": "风险", "12315": "风险", "微信": "引流", "vx": "引流",
         "傻逼": "辱骂", "退款专线": "售后"}


@pytest.fixture(scope="module")
def words() -> SensitiveWords:
    return SensitiveWords(WORDS)


@pytest.mark.parametrize(
    ("text", "found", "redacted"),
    [
        ("我要退款", ["退款"], "我要**"),
        ("我要退 款", ["退款"], "我要***"),
        ("我要退-款！", ["退款"], "我要***！"),
        ("我要退．款", ["退款"], "我要***"),
        ("我要退·款", ["退款"], "我要***"),
        ("我要退\u200b款", ["退款"], "我要***"),
        ("我要退　款", ["退款"], "我要***"),
        ("再不处理我就投訴", ["投诉"], "再不处理我就**"),
        ("撥打退款專線", ["退款", "退款专线"], "撥打****"),
        ("打１２３１５", ["12315"], "打*****"),
        ("加ＶＸ聊", ["vx"], "加**聊"),
        ("加 V x 聊", ["vx"], "加 *** 聊"),
        ("加威信，不，加微 信", ["微信"], "加威信，不，加***"),
        ("你个傻 B", [], "你个傻 B"),
    ],
)
def test_finds_words_however_they_are_written(
    words: SensitiveWords, text: str, found: list[str], redacted: str
) -> None:
    matches = words.find(text)
    assert sorted(m.word for m in matches) == sorted(found)
    for m in matches:
        assert m.category == WORDS[m.word]
    assert words.redact(text).text == redacted
    assert words.contains(text) is bool(found)


def test_latin_words_match_only_as_whole_words(words: SensitiveWords) -> None:
    assert [m.word for m in words.find("加vx群")] == ["vx"]
    assert words.find("vxq") == [] and words.find("avx") == []
    assert [m.word for m in SensitiveWords(["vx"], whole_latin_words=False).find("avxb")] == ["vx"]


def test_gap_limit(words: SensitiveWords) -> None:
    assert words.find("退，，，款") == [WordMatch("退款", 0, 5, "售后")]
    assert words.find("退，，，，款") == []
    assert SensitiveWords(["退款"], max_gap=0).find("退 款") == []


def test_overlapping_words_are_all_reported() -> None:
    matcher = SensitiveWords(["退款", "款", "退"])
    assert [(m.word, m.start, m.end) for m in matcher.find("退款")] == [
        ("退款", 0, 2), ("退", 0, 1), ("款", 1, 2)]


def test_same_normal_form_reports_the_first_spelling() -> None:
    matcher = SensitiveWords(["退 款", "退款", "退款"])
    assert [m.word for m in matcher.find("退款")] == ["退 款"]
    assert len(matcher) == 3 and matcher.words == ("退 款", "退款", "退款")


@pytest.mark.parametrize(
    ("words", "kwargs"),
    [(["退款", " ，、"], {}), (["退款", ""], {}), ("退款", {}), ([1], {}),
     (["退款"], {"max_gap": -1}), (["退款"], {"mask_char": "x"}), (["退款"], {"mask_char": "**"})],
)
def test_bad_word_lists_raise_a_typed_error(words: object, kwargs: dict[str, object]) -> None:
    with pytest.raises(GuardrailValueError) as caught:
        SensitiveWords(words, **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, KimiAgentError)


def test_normal_form() -> None:
    assert normalize_for_matching("退 款-專線ＡＢＣ①") == "退款专线abc1"
    assert len(T2S) >= 300


def test_thousands_of_words() -> None:
    vocabulary = [f"敏感词{i}号" for i in range(5000)] + ["退款"]
    matcher = SensitiveWords(vocabulary)
    text = "客户说：敏感词 4999 号，以及退款。" * 50
    matches = matcher.find(text)
    assert len(matches) == 100
    assert {m.word for m in matches} == {"敏感词4999号", "退款"}


# ---------------------------------------------------------------------------- properties

TRADITIONAL_OF: dict[str, str] = {}
for _t, _s in T2S.items():
    TRADITIONAL_OF.setdefault(_s, _t)
SIMPLIFIED = sorted(TRADITIONAL_OF)
SEPARATORS = st.text(alphabet=" -_.·，、*~　\u200b/|", min_size=1, max_size=3)
FILLER_CHARS = "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会"
word_lists = st.lists(
    st.text(alphabet=[*SIMPLIFIED[:200], "q", "x", "7"], min_size=1, max_size=5), min_size=1,
    max_size=8, unique=True,
)


@st.composite
def written_variants(draw: st.DrawFn, word: str) -> str:
    """`word` with separators slipped in and characters written traditional / full-width."""
    out = []
    for index, char in enumerate(word):
        if index and draw(st.booleans()):
            out.append(draw(SEPARATORS))
        if char in TRADITIONAL_OF and draw(st.booleans()):
            char = TRADITIONAL_OF[char]
        elif char.isascii() and draw(st.booleans()):
            char = chr(ord(char.upper()) + 0xFEE0)
        out.append(char)
    return "".join(out)


@given(st.data(), word_lists)
def test_words_are_found_with_separators_and_variants(
    data: st.DataObject, vocabulary: list[str]
) -> None:
    matcher = SensitiveWords(vocabulary, whole_latin_words=False)
    word = data.draw(st.sampled_from(vocabulary))
    written = data.draw(written_variants(word))
    before = data.draw(st.text(alphabet=FILLER_CHARS, max_size=8))
    after = data.draw(st.text(alphabet=FILLER_CHARS, max_size=8))
    text = before + written + after
    span = (len(before), len(before) + len(written))
    assert any((m.word, m.start, m.end) == (word, *span) for m in matcher.find(text))
    redacted = matcher.redact(text)
    assert redacted.text[span[0]:span[1]] == "*" * len(written)
    assert matcher.redact(redacted.text).text == redacted.text


def brute_force(vocabulary: list[str], text: str) -> set[tuple[str, int, int]]:
    """Every occurrence of every word's normal form in the normal form of `text`."""
    chars = [(out, i) for i, c in enumerate(text) for out in normalize_for_matching(c)]
    flat = "".join(c for c, _ in chars)
    found: set[tuple[str, int, int]] = set()
    forms: dict[str, str] = {}
    for word in vocabulary:
        forms.setdefault(normalize_for_matching(word), word)
    for form, word in forms.items():
        for m in re.finditer(f"(?=({re.escape(form)}))", flat):
            found.add((word, chars[m.start()][1], chars[m.start() + len(form) - 1][1] + 1))
    return found


@given(word_lists, st.text(alphabet=[*SIMPLIFIED[:200], *"qx7 -，。Ｑ"], max_size=80))
def test_matches_equal_a_brute_force_search(vocabulary: list[str], text: str) -> None:
    matcher = SensitiveWords(vocabulary, max_gap=10**6, whole_latin_words=False)
    got = {(m.word, m.start, m.end) for m in matcher.find(text)}
    assert got == brute_force(vocabulary, text)


@given(word_lists, st.data())
def test_streaming_redacts_exactly_like_the_whole_text(
    vocabulary: list[str], data: st.DataObject
) -> None:
    matcher = SensitiveWords(vocabulary)
    pieces = data.draw(st.lists(st.one_of(
        st.sampled_from(vocabulary).flatmap(written_variants),
        st.text(alphabet=FILLER_CHARS + " ，。qx", max_size=6)), max_size=8))
    text = "".join(pieces)
    cuts = data.draw(st.lists(st.integers(1, 6), max_size=20))
    whole = matcher.redact(text)
    stream = matcher.stream()
    out, index = [], 0
    for size in cuts:
        out.append(stream.feed(text[index:index + size]))
        index += size
        assert whole.text.startswith("".join(out))
        # at least the holdback waits (more only to keep a match that overlaps it whole)
        assert len(stream.held) >= matcher.holdback(text[:index])
    out.append(stream.feed(text[index:]))
    out.append(stream.flush())
    assert "".join(out) == whole.text
    assert sorted(stream.findings, key=lambda m: (m.start, -m.end, m.word)) == sorted(
        whole.matches, key=lambda m: (m.start, -m.end, m.word))


def test_holdback_is_the_start_of_a_possible_word(words: SensitiveWords) -> None:
    assert words.holdback("您好，请问有什么可以帮您？") == 0
    assert words.holdback("我想要退") == 1
    assert words.holdback("我想要退 ") == 2
    assert words.holdback("我想要退     ") == 0  # more than max_gap: no word goes on
    assert words.holdback("我要投诉") == 0  # a complete word that cannot grow is final
    stream = words.stream()
    assert stream.feed("您可以申请退") == "您可以申请"
    assert stream.feed("款。") == ""  # "退款。专线" would still be 退款专线
    assert stream.feed("请稍候") == "**。请稍候"
    assert stream.flush() == ""
    assert stream.findings == [WordMatch("退款", 5, 7, "售后")]


@given(st.text(max_size=40))
def test_any_text_redacts_to_the_same_length_idempotently(text: str) -> None:
    matcher = SensitiveWords(WORDS)
    assume(text)
    once = matcher.redact(text).text
    assert len(once) == len(text)
    assert matcher.redact(once).text == once
