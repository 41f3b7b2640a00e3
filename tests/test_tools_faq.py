"""FAQ search: Chinese-aware tokenising, Markdown/JSON loading, BM25 ranking, the tool."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kimi_agent_tools import FaqEntry, KnowledgeBase, faq_search
from kimi_agent_tools.faq import tokenize

from kimi_agent import RunContext, Tool
from kimi_agent.tooling._dialect import check_moonshot

SHOP_FAQ_MD = """\
# 售后服务

这一段是整个文件的说明，不属于任何问题。

## 退货政策

### 如何申请退货？
签收后 7 天内，在“我的订单”中选择商品并点击“申请退货”，审核通过后寄回商品即可。
标签：退货, 售后

### 退货运费由谁承担？
商品质量问题的退货运费由商家承担；七天无理由退货的运费由买家承担。

### 退款多久到账？
商家收到退货后 1–3 个工作日内原路退款，银行卡可能需要额外 1–5 个工作日。

## 配送

### 下单后多久发货？
现货商品在付款后 48 小时内发货，预售商品以页面说明为准。

### 收货地址填错了怎么办？
订单发货前可以在订单详情页修改收货地址；已发货的订单请联系客服。

```
# 这不是标题，是代码块里的内容
```
"""

SHOP_FAQ_JSON = [
    {
        "question": "如何开具发票？",
        "answer": "在订单详情页点击“申请开票”，可开具电子普通发票或增值税专用发票。",
        "tags": ["发票"],
    },
    {
        "question": "支持哪些支付方式？",
        "answer": "支持支付宝（Alipay）、微信支付（WeChat Pay）和银联卡。",
    },
    {
        "question": "会员积分怎么使用？",
        "answer": "下单时可用积分抵扣，100 积分抵 1 元，最多抵扣订单金额的 10%。",
        "tags": ["会员", "积分"],
    },
    {
        "question": "How do I contact customer service?",
        "answer": "Chat with us in the app from 9:00 to 21:00 (Beijing time), every day.",
    },
]


@dataclass
class Deps:
    knowledge_base: KnowledgeBase


@pytest.fixture
def faq_dir(tmp_path: Path) -> Path:
    (tmp_path / "after_sales.md").write_text(SHOP_FAQ_MD, encoding="utf-8")
    nested = tmp_path / "more"
    nested.mkdir()
    (nested / "general.json").write_text(
        json.dumps(SHOP_FAQ_JSON, ensure_ascii=False), encoding="utf-8-sig"  # BOM tolerated
    )
    (nested / "notes.txt").write_text("not part of the knowledge base", encoding="utf-8")
    return tmp_path


@pytest.fixture
def kb(faq_dir: Path) -> KnowledgeBase:
    return KnowledgeBase.from_paths(faq_dir)


def ctx(kb: KnowledgeBase) -> RunContext[Deps]:
    return RunContext(deps=Deps(kb), run_id="test")


# --------------------------------------------------------------------------- tokenising


def test_tokenize_cjk_bigrams_unigrams_and_latin_words() -> None:
    tokens = tokenize("退货运费 iPhone15 ＶＩＰ")
    assert {"退货", "货运", "运费", "退", "货", "运", "费"} <= set(tokens)
    assert "iphone15" in tokens
    assert "vip" in tokens  # full-width letters are folded by NFKC


def test_tokenize_splits_latin_from_adjacent_chinese() -> None:
    assert {"iphone", "手机"} <= set(tokenize("iPhone手机"))


def test_tokenize_drops_particles_but_keeps_them_inside_bigrams() -> None:
    tokens = tokenize("我的订单")
    assert "的" not in tokens and "我" not in tokens
    assert {"订单", "我的", "的订"} <= set(tokens)


@settings(max_examples=300)
@given(st.text())
def test_tokenize_never_crashes_on_any_unicode(text: str) -> None:
    tokens = tokenize(text)
    assert all(isinstance(t, str) and t for t in tokens)


def test_tokenize_survives_lone_surrogates_and_controls() -> None:
    assert tokenize("\ud800退货\x00\u200b") == ["退", "货", "退货"]


# --------------------------------------------------------------------------- loading


def test_markdown_sections_become_entries_with_heading_tags(kb: KnowledgeBase) -> None:
    questions = [e.question for e in kb.entries]
    assert questions[:6] == [
        "售后服务",  # the heading's own text is its answer
        "如何申请退货？",
        "退货运费由谁承担？",
        "退款多久到账？",
        "下单后多久发货？",
        "收货地址填错了怎么办？",
    ]
    by_question = {e.question: e for e in kb.entries}
    returns = by_question["如何申请退货？"]
    assert returns.tags == ("售后服务", "退货政策", "退货", "售后")
    assert "标签" not in returns.answer  # the tag line is not part of the answer
    assert returns.source.endswith("after_sales.md")
    address = by_question["收货地址填错了怎么办？"]
    assert "这不是标题" in address.answer  # a fenced '#' line is content, not a heading
    assert "这不是标题，是代码块里的内容" not in questions


def test_json_entries_load_with_tags(kb: KnowledgeBase) -> None:
    by_question = {e.question: e for e in kb.entries}
    assert by_question["会员积分怎么使用？"].tags == ("会员", "积分")
    assert by_question["支持哪些支付方式？"].tags == ()
    assert len(kb) == 6 + len(SHOP_FAQ_JSON)  # notes.txt was skipped


def test_bad_json_names_the_file_and_item(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "有答案吗？"}], ensure_ascii=False), "utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: item 0: 'answer'"):
        KnowledgeBase.from_paths(bad)
    bad.write_text('{"question": "x"}', "utf-8")
    with pytest.raises(ValueError, match="expected a JSON list"):
        KnowledgeBase.from_paths(bad)


def test_missing_or_unsupported_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        KnowledgeBase.from_paths(tmp_path / "nope.md")
    other = tmp_path / "faq.txt"
    other.write_text("问：？", "utf-8")
    with pytest.raises(ValueError, match=r"\.md or \.json"):
        KnowledgeBase.from_paths(other)


# --------------------------------------------------------------------------- searching


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("退货运费谁出？", "退货运费由谁承担？"),
        ("我想退货，怎么操作", "如何申请退货？"),
        ("退款什么时候能到账", "退款多久到账？"),
        ("买了以后几天发货", "下单后多久发货？"),
        ("地址写错了能改吗", "收货地址填错了怎么办？"),
        ("怎么开发票", "如何开具发票？"),
        ("可以用微信付款吗", "支持哪些支付方式？"),
        ("能用Alipay吗", "支持哪些支付方式？"),
        ("积分可以抵现金吗", "会员积分怎么使用？"),
        ("how to contact customer service", "How do I contact customer service?"),
    ],
)
def test_chinese_and_english_queries_find_the_right_passage(
    kb: KnowledgeBase, query: str, expected: str
) -> None:
    hits = kb.search(query, top_k=3)
    assert hits, query
    assert hits[0].entry.question == expected


def test_results_are_sorted_limited_and_scored(kb: KnowledgeBase) -> None:
    hits = kb.search("退货 退款 运费", top_k=2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score > 0


def test_nothing_matches_gives_an_empty_list(kb: KnowledgeBase) -> None:
    assert kb.search("量子纠缠") == []
    assert kb.search("") == []
    assert kb.search("？！。，") == []


def test_empty_knowledge_base() -> None:
    assert KnowledgeBase([]).search("退货") == []


def test_search_is_deterministic_on_ties() -> None:
    kb = KnowledgeBase([FaqEntry("甲", "同样的答案"), FaqEntry("乙", "同样的答案")])
    assert [h.entry.question for h in kb.search("答案", top_k=2)] == ["甲", "乙"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=50), st.integers(min_value=-3, max_value=20))
def test_search_never_crashes(query: str, top_k: int) -> None:
    kb = KnowledgeBase(KnowledgeBase.parse_markdown(SHOP_FAQ_MD))
    hits = kb.search(query, top_k=top_k)
    assert len(hits) <= max(top_k, 0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


# --------------------------------------------------------------------------- the tool


def test_faq_search_is_a_tool_with_hidden_context() -> None:
    assert isinstance(faq_search, Tool)
    assert faq_search.name == "faq_search"
    properties = faq_search.parameters["properties"]
    assert set(properties) == {"query", "top_k"}  # ctx is injected, never shown
    assert properties["query"]["type"] == "string"
    assert properties["top_k"]["type"] == "integer"
    assert properties["top_k"]["default"] == 3
    assert faq_search.parameters["required"] == ["query"]
    assert "知识库" in faq_search.description
    assert check_moonshot(faq_search.parameters) == []


def test_faq_search_tool_returns_passages_with_scores(kb: KnowledgeBase) -> None:
    result = faq_search(ctx(kb), "退货运费谁出？", top_k=2)
    assert result["query"] == "退货运费谁出？"
    best = result["results"][0]
    assert best["question"] == "退货运费由谁承担？"
    assert "商家承担" in best["answer"]
    assert isinstance(best["score"], float)
    assert 1 <= len(result["results"]) <= 2
    assert "message" not in result


def test_faq_search_tool_says_when_nothing_is_found(kb: KnowledgeBase) -> None:
    result = faq_search(ctx(kb), "量子纠缠")
    assert result["results"] == []
    assert "没有找到" in result["message"]


def test_faq_search_tool_clamps_top_k(kb: KnowledgeBase) -> None:
    assert len(faq_search(ctx(kb), "退货", top_k=0)["results"]) == 1
    assert len(faq_search(ctx(kb), "退货 退款 发货 发票 积分 支付", top_k=99)["results"]) <= 10


def test_faq_search_drops_weak_tail_matches(kb: KnowledgeBase) -> None:
    result = faq_search(ctx(kb), "如何开具增值税专用发票", top_k=10)
    scores = [r["score"] for r in result["results"]]
    assert result["results"][0]["question"] == "如何开具发票？"
    assert all(s >= 0.2 * scores[0] - 1e-3 for s in scores)
