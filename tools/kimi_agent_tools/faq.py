"""FAQ search over a knowledge base of Markdown or JSON files, with retrieval that suits Chinese.

常见问题检索。The knowledge base is a list of question → answer entries:

- **Markdown**: every heading that has text under it is a question, the text is its answer,
  and the headings above it become its tags (``# 配送`` / ``## 多久能到？`` gives the question
  "多久能到？" tagged "配送"). A line ``标签：退货, 售后`` (or ``Tags: ...``) adds tags.
  Text before the first heading and headings inside code fences are ignored.
- **JSON**: a list of ``{"question": ..., "answer": ..., "tags": [...]}`` (tags optional).

Retrieval is BM25 (k1=1.5, b=0.75) with no external dependency. Chinese has no spaces, so
runs of CJK characters are indexed as character bigrams plus single characters (minus a few
particles such as 的/了/吗): "退货运费" matches "退货" and "运费". Latin text, digits and
other scripts are indexed as lower-cased words after NFKC (so full-width ``ＶＩＰ`` is ``vip``).
The question counts twice and the tags once on top of the answer, so a passage whose question
matches beats one that merely mentions the words.

Binding: the tool reads the knowledge base from the run's deps — any object with a
`knowledge_base` attribute (`HasKnowledgeBase`), e.g. `tools.ShopDeps`. The index is built
once, when the `KnowledgeBase` is created; searching is read-only and thread-safe.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kimi_agent import RunContext, tool

__all__ = [
    "FaqEntry",
    "FaqHit",
    "HasKnowledgeBase",
    "KnowledgeBase",
    "faq_search",
    "tokenize",
]

_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0003134f"  # extensions B–G
)
_CJK_RUN = re.compile(f"([{_CJK}]+)")
_WORD = re.compile(r"[^\W_]+")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_TAG_LINE = re.compile(r"^\s*(?:标签|tags)\s*[:：]\s*(.+)$", re.IGNORECASE)
_TAG_SPLIT = re.compile(r"[,，、;；]\s*|\s+")

# Single characters too common to mean anything on their own (bigrams keep them in context).
_CJK_STOP = frozenset("的了吗呢吧啊呀哦嗯么是我你您他她它在和与及也都就还请要想")
# Question words: in every customer question, they say nothing about the topic.
_CJK_STOP_BIGRAMS = frozenset(
    {"怎么", "怎样", "如何", "什么", "为什", "请问", "可以", "能不", "不能", "是不", "我想", "我要",
     "一下", "的话"}
)
_WORD_STOP = frozenset(
    {"a", "an", "the", "is", "are", "was", "be", "to", "of", "and", "or", "in", "on", "at",
     "for", "my", "me", "i", "you", "your", "it", "do", "does", "did", "can", "how", "what",
     "when", "where", "why", "which"}
)

_UNIGRAM_WEIGHT = 0.3  # single CJK characters: recall for short queries, little weight
_QUESTION_WEIGHT = 1.0  # extra BM25 over the question field
_K1 = 1.5
_B = 0.75
_MAX_ANSWER_CHARS = 2000
_RELATIVE_CUTOFF = 0.2
_MAX_TOP_K = 10


def tokenize(text: str) -> list[str]:
    """Index terms of `text`: CJK bigrams + unigrams, lower-cased words for everything else.

    Never fails, whatever the input: characters that are neither letters nor digits are
    separators, and unpaired surrogates or control characters are simply skipped.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for i, piece in enumerate(_CJK_RUN.split(text)):
        if i % 2:  # a run of CJK characters
            tokens.extend(c for c in piece if c not in _CJK_STOP)
            bigrams = (piece[j : j + 2] for j in range(len(piece) - 1))
            tokens.extend(b for b in bigrams if b not in _CJK_STOP_BIGRAMS)
        else:
            tokens.extend(w for w in _WORD.findall(piece) if w not in _WORD_STOP)
    return tokens


def _is_cjk_char(term: str) -> bool:
    return len(term) == 1 and _CJK_RUN.match(term) is not None


@dataclass(frozen=True, slots=True)
class FaqEntry:
    """One question and its answer; `source` names the file it came from."""

    question: str
    answer: str
    tags: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True, slots=True)
class FaqHit:
    """A search result: the entry and its BM25 score (higher is better)."""

    entry: FaqEntry
    score: float

    def as_dict(self) -> dict[str, Any]:
        answer = self.entry.answer
        if len(answer) > _MAX_ANSWER_CHARS:
            answer = answer[:_MAX_ANSWER_CHARS] + "…（已截断 / truncated）"
        return {"question": self.entry.question, "answer": answer, "score": round(self.score, 3)}


class KnowledgeBase:
    """FAQ entries and their BM25 index, built once at construction.

    >>> kb = KnowledgeBase([FaqEntry("怎么退货？", "七天内可在订单页申请退货。")])
    >>> kb.search("退货")[0].entry.question
    '怎么退货？'
    """

    def __init__(self, entries: Iterable[FaqEntry]) -> None:
        self._entries: tuple[FaqEntry, ...] = tuple(entries)
        # Two BM25 fields: the whole entry, and the question alone (a customer's question
        # that resembles an FAQ question is the strongest signal there is).
        self._whole = _Field(
            Counter([*tokenize(e.question), *tokenize(" ".join(e.tags)), *tokenize(e.answer)])
            for e in self._entries
        )
        self._question = _Field(Counter(tokenize(e.question)) for e in self._entries)
        total = len(self._entries)
        self._idf = {
            term: math.log(1 + (total - len(p) + 0.5) / (len(p) + 0.5))
            for term, p in self._whole.postings.items()
        }

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_paths(cls, *paths: str | os.PathLike[str]) -> KnowledgeBase:
        """Load every ``.md`` / ``.markdown`` / ``.json`` file named, or found under a folder.

        Folders are walked recursively in sorted order, so the result does not depend on
        the file system. A file with another suffix named explicitly is an error.
        """
        entries: list[FaqEntry] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files = sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _LOADERS
                )
            elif path.exists():
                files = [path]
            else:
                raise FileNotFoundError(f"knowledge base file not found: {path}")
            for file in files:
                loader = _LOADERS.get(file.suffix.lower())
                if loader is None:
                    raise ValueError(f"{file}: knowledge base files must be .md or .json")
                entries.extend(loader(file.read_text(encoding="utf-8-sig"), str(file)))
        return cls(entries)

    @staticmethod
    def parse_markdown(text: str, source: str = "") -> list[FaqEntry]:
        """Entries of a Markdown document: heading → the text under it (see module docs)."""
        entries: list[FaqEntry] = []
        stack: list[tuple[int, str]] = []  # enclosing headings: (level, title)
        title: str | None = None
        parents: tuple[str, ...] = ()
        body: list[tuple[str, bool]] = []  # (line, inside a code fence)
        in_fence = False

        def flush() -> None:
            tags = list(parents)
            lines = []
            for line, fenced in body:
                tag_line = None if fenced else _TAG_LINE.match(line)
                if tag_line:
                    tags.extend(t for t in _TAG_SPLIT.split(tag_line.group(1)) if t)
                else:
                    lines.append(line)
            answer = "\n".join(lines).strip()
            if title and answer:
                entries.append(FaqEntry(title, answer, tuple(dict.fromkeys(tags)), source))

        for line in text.splitlines():
            fence = _FENCE.match(line) is not None
            if fence:
                in_fence = not in_fence
            heading = None if in_fence or fence else _HEADING.match(line)
            if heading is None:
                body.append((line, in_fence or fence))
                continue
            flush()
            level, title = len(heading.group(1)), heading.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            parents = tuple(t for _, t in stack)
            stack.append((level, title))
            body = []
        flush()
        return entries

    @staticmethod
    def parse_json(text: str, source: str = "") -> list[FaqEntry]:
        """Entries of a JSON list of ``{"question", "answer", "tags"?}`` objects."""
        where = source or "<json>"
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a JSON list of {{question, answer, tags?}}")
        entries = []
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise ValueError(f"{where}: item {i} must be an object")
            question, answer, tags = item.get("question"), item.get("answer"), item.get("tags", [])
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f"{where}: item {i}: 'question' must be a non-empty string")
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError(f"{where}: item {i}: 'answer' must be a non-empty string")
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError(f"{where}: item {i}: 'tags' must be a list of strings")
            entries.append(FaqEntry(question.strip(), answer.strip(), tuple(tags), source))
        return entries

    # ------------------------------------------------------------------ searching

    @property
    def entries(self) -> Sequence[FaqEntry]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def search(self, query: str, top_k: int = 3, *, min_ratio: float = 0.0) -> list[FaqHit]:
        """The `top_k` best entries for `query`, best first; [] when nothing matches.

        `min_ratio` drops hits scoring below that fraction of the best hit (0 keeps all).
        Ties keep the order of the knowledge base, so results are deterministic.
        """
        terms = list(dict.fromkeys(tokenize(query)))
        needs_strong = any(not _is_cjk_char(t) for t in terms)
        scores: dict[int, float] = defaultdict(float)
        strong: set[int] = set()
        for term in terms:
            idf = self._idf.get(term)
            if idf is None:
                continue
            weak = _is_cjk_char(term)
            weight = idf * (_UNIGRAM_WEIGHT if weak else 1.0)
            for field, field_weight in ((self._whole, 1.0), (self._question, _QUESTION_WEIGHT)):
                for index in field.add_scores(term, weight * field_weight, scores):
                    if not weak:
                        strong.add(index)
        if needs_strong:  # single shared characters alone are noise, not a match
            scores = {i: s for i, s in scores.items() if i in strong}
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        if not ranked:
            return []
        floor = ranked[0][1] * min_ratio
        return [FaqHit(self._entries[i], s) for i, s in ranked[: max(top_k, 0)] if s >= floor]


class _Field:
    """The BM25 postings and lengths of one field of every entry."""

    def __init__(self, documents: Iterable[Counter[str]]) -> None:
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths: list[int] = []
        for index, terms in enumerate(documents):
            self.lengths.append(sum(terms.values()))
            for term, count in terms.items():
                self.postings[term].append((index, count))
        self.average = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0

    def add_scores(self, term: str, weight: float, scores: dict[int, float]) -> Iterator[int]:
        """Add `term`'s BM25 contribution to `scores`; yields the entries that contain it."""
        for index, count in self.postings.get(term, ()):
            norm = 1 - _B + _B * self.lengths[index] / self.average
            scores[index] += weight * count * (_K1 + 1) / (count + _K1 * norm)
            yield index


_LOADERS = {
    ".md": KnowledgeBase.parse_markdown,
    ".markdown": KnowledgeBase.parse_markdown,
    ".json": KnowledgeBase.parse_json,
}


class HasKnowledgeBase(Protocol):
    """Deps that carry a knowledge base (e.g. `tools.ShopDeps`)."""

    @property
    def knowledge_base(self) -> KnowledgeBase: ...


@tool
def faq_search(ctx: RunContext[HasKnowledgeBase], query: str, top_k: int = 3) -> dict[str, Any]:
    """在常见问题知识库中检索答案。Search the shop's FAQ knowledge base.

    Use it for questions about policies and how-tos (退货、运费、发票、会员…). Returns the best
    matching passages with scores, best first; an empty list means the knowledge base has no
    answer — do not make one up.

    Args:
        query: 用户的问题或关键词 / the question or keywords, e.g. "退货运费谁出".
        top_k: 返回的条数（1–10）/ how many passages to return (1–10).
    """
    top_k = min(max(top_k, 1), _MAX_TOP_K)
    hits = ctx.deps.knowledge_base.search(query, top_k, min_ratio=_RELATIVE_CUTOFF)
    result: dict[str, Any] = {"query": query, "results": [hit.as_dict() for hit in hits]}
    if not hits:
        result["message"] = (
            "知识库中没有找到相关内容。No matching passage in the knowledge base."
        )
    return result
