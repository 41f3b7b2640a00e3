"""The unconfirmed-claims check: amounts and ids in an answer that no tool result contains."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from kimi_agent_tools.guardrails import (
    Claim,
    ClaimChecker,
    ClaimKind,
    GuardrailValueError,
    find_claims,
    unconfirmed_claims,
)
from kimi_agent_tools.guardrails._cn_numbers import parse_chinese_number

from tests.guardrails.samples import FILLER, to_chinese

ORDER = {"order_id": "A1024", "status": "shipped", "total": "328.90", "refundable": "328.90"}
REFUND = json.dumps({"refund_id": "RF000003", "order_id": "A1024", "amount": "89.00",
                     "status": "processing"}, ensure_ascii=False)


def texts(claims: list[Claim]) -> list[str]:
    return [c.text for c in claims]


def test_an_answer_that_only_repeats_tool_results_is_confirmed() -> None:
    answer = "您好！订单 A1024 已为您申请退款 ¥89.00（退款单号 RF000003），订单总额 328.9 元。"
    assert texts(find_claims(answer)) == ["A1024", "¥89.00", "RF000003", "328.9 元"]
    assert unconfirmed_claims(answer, [ORDER, REFUND]) == []


def test_promises_no_tool_made_are_reported() -> None:
    answer = "已为您退款 100元，退款单号 RF000009，另送您 20 元优惠券。"
    claims = unconfirmed_claims(answer, [ORDER, REFUND])
    assert [(c.kind, c.text, c.value) for c in claims] == [
        (ClaimKind.AMOUNT, "100元", "100"),
        (ClaimKind.REFERENCE, "RF000009", "RF000009"),
        (ClaimKind.AMOUNT, "20 元", "20"),
    ]
    (first, *_) = claims
    assert answer[first.start:first.end] == first.text


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("退款¥89", "89"), ("退款￥89.00", "89"), ("退款 89元", "89"), ("退款 89.5 元", "89.5"),
        ("退款 RMB 89", "89"), ("退款CNY89.00", "89"), ("退款人民币89元", "89"),
        ("退款89块钱", "89"), ("退您50块。", "50"),
        ("退您50块吧", "50"), ("一块钱", "1"), ("退款 1,299.00 元", "1299"),
        ("补贴 1.2万元", "12000"),
        ("退款八十九元", "89"), ("退款捌拾玖元整", "89"), ("退款八十九元五角", "89.5"),
        ("退款一百零五块", "105"), ("补贴两千元", "2000"), ("补贴三万五千元", "35000"),
        ("退款８９元", "89"), ("退款 ￥８９．５", "89.5"),
    ],
)
def test_amount_forms(answer: str, value: str) -> None:
    (claim,) = find_claims(answer)
    assert claim.kind is ClaimKind.AMOUNT and claim.value == value
    assert unconfirmed_claims(answer, [{"amount": Decimal(value)}]) == []
    assert unconfirmed_claims(answer, [{"amount": Decimal(value) + 1}]) == [claim]


@pytest.mark.parametrize(
    "answer",
    ["订单 A1024 共 3 件", "请在 7 天内申请", "2024-01-15 发货", "评分 4.8 分", "第八十九号",
     "订单a1024", "八九元左右", "他是万元户", "送您两块蛋糕", "附赠 3块电池"],
)
def test_no_claims_in_text_without_amounts_or_ids(answer: str) -> None:
    assert [c for c in find_claims(answer) if c.kind is ClaimKind.AMOUNT] == []
    assert all(c.text == "A1024" for c in find_claims(answer))


def test_ids_compare_without_case_or_dash() -> None:
    assert unconfirmed_claims("工单 TK-000001 已创建", ['{"ticket_id": "tk000001"}']) == []
    assert unconfirmed_claims("退款单 RF000003", ["退款单号：RF-000003"]) == []


def test_what_confirms_an_amount() -> None:
    answer = "可退 ¥328.90"
    assert unconfirmed_claims(answer, [328.9]) == []
    assert unconfirmed_claims(answer, ["可退金额 328.90 元"]) == []
    assert unconfirmed_claims(answer, [[{"items": [{"price": "328.90"}]}]]) == []
    assert len(unconfirmed_claims(answer, ["订单 A328"])) == 1  # part of an id
    assert len(unconfirmed_claims("¥15", ["发货时间 2024-01-15 10:15"])) == 1  # a date
    assert len(unconfirmed_claims(answer, [True, None])) == 1
    assert unconfirmed_claims("您说的 50 元我们已记录", [], known=["我要退 50 块"]) == []


def test_checker_collects_results_during_a_run() -> None:
    checker = ClaimChecker()
    answer = "已退款 ¥89.00，单号 RF000003"
    assert len(checker.unconfirmed(answer)) == 2
    checker.add(REFUND)
    assert checker.unconfirmed(answer) == []


def test_custom_reference_pattern() -> None:
    answer = "您的订单 2024011500123 已退款"
    pattern = r"(?<!\d)20\d{11}(?!\d)"
    (claim,) = unconfirmed_claims(answer, [], reference_pattern=pattern)
    assert claim.value == "2024011500123"
    assert unconfirmed_claims(answer, ["order 2024011500123"], reference_pattern=pattern) == []
    with pytest.raises(GuardrailValueError):
        ClaimChecker(reference_pattern="([")


def test_holdback_covers_a_claim_that_may_go_on() -> None:
    assert ClaimChecker.holdback("已为您退款") == 0
    assert ClaimChecker.holdback("已为您退款 ¥8") == 3
    assert ClaimChecker.holdback("单号 RF00") == 5


# ---------------------------------------------------------------------------- properties

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2)
STYLES = ["¥{}", "￥{}", "{}元", "{} 元", "RMB {}", "人民币{}元", "{}块钱", "CNY{}"]


@given(amounts, st.sampled_from(STYLES), st.sampled_from(["{:.2f}", "{}", "{:.1f}"]),
       FILLER, FILLER)
def test_any_amount_is_confirmed_by_the_same_value_in_another_form(
    amount: Decimal, style: str, tool_format: str, before: str, after: str
) -> None:
    assume(Decimal(tool_format.format(amount)) == amount)
    answer = before + style.format(amount) + after
    claims = [c for c in find_claims(answer) if c.kind is ClaimKind.AMOUNT]
    assert [Decimal(c.value) for c in claims] == [amount]
    as_json = json.dumps({"refund": {"amount": tool_format.format(amount)}})
    assert unconfirmed_claims(answer, [as_json]) == []
    assert unconfirmed_claims(answer, [{"amount": float(amount)}]) == []


@given(amounts, amounts, st.sampled_from(STYLES), FILLER)
def test_a_different_amount_is_unconfirmed(
    amount: Decimal, other: Decimal, style: str, before: str
) -> None:
    assume(amount != other)
    answer = before + style.format(amount)
    (claim,) = unconfirmed_claims(answer, [{"amount": str(other)}, f"¥{other}"])
    assert Decimal(claim.value) == amount


@given(st.integers(min_value=1, max_value=99_999_999))
def test_chinese_numerals_parse(number: int) -> None:
    assert parse_chinese_number(to_chinese(number)) == number
    (claim,) = find_claims(f"补偿您{to_chinese(number)}元")
    assert claim.value == str(number)


@given(st.text(alphabet="¥元块89.,RMBA1024F 退款已", max_size=30), st.integers(0, 30))
def test_claims_before_the_holdback_are_final(text: str, cut: int) -> None:
    partial = text[:cut]
    safe = partial[: len(partial) - ClaimChecker.holdback(partial)]
    final = {(c.start, c.end, c.value) for c in find_claims(text)}
    assert {(c.start, c.end, c.value) for c in find_claims(safe)} <= final


@given(st.text(max_size=60), st.lists(st.one_of(st.text(max_size=30), st.integers(),
                                                 st.floats(), st.none()), max_size=4))
def test_any_text_and_results_can_be_checked(answer: str, results: list[object]) -> None:
    claims = unconfirmed_claims(answer, results)
    for claim in claims:
        assert answer[claim.start:claim.end] == claim.text
