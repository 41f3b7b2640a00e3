"""PII masking: real-format phone, id-card and bank-card numbers are masked, near-misses are not."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from kimi_agent_tools.guardrails import (
    DEFAULT_KINDS,
    GuardrailValueError,
    PiiKind,
    PiiMasker,
    is_bank_card_number,
    is_id_card_number,
    is_luhn_valid,
    mask_pii,
)

from kimi_agent.errors import KimiAgentError
from tests.guardrails.samples import (
    FILLER,
    FULL_WIDTH,
    bank_cards,
    card_groups,
    group,
    id_cards,
    phones,
)

ID_SAMPLE = "11010519491231002X"  # the example number of GB 11643-1999
CARD_SAMPLE = "6222021234567890128"  # 19 digits, Luhn-valid


@pytest.mark.parametrize(
    ("text", "masked", "kind"),
    [
        ("请联系我 13812345678，谢谢", "请联系我 138****5678，谢谢", PiiKind.PHONE),
        ("手机：138 1234 5678。", "手机：138 **** 5678。", PiiKind.PHONE),
        ("手机：138-1234-5678", "手机：138-****-5678", PiiKind.PHONE),
        ("电话+86 139 0000 1111", "电话+86 139 **** 1111", PiiKind.PHONE),
        ("电话 +8615900001111", "电话 +86159****1111", PiiKind.PHONE),
        ("电话 +86159 0000 1111", "电话 +86159 **** 1111", PiiKind.PHONE),
        ("电话 0086-177-0000-2222", "电话 0086-177-****-2222", PiiKind.PHONE),
        ("（+86）186 0000 3333 找我", "（+86）186 **** 3333 找我", PiiKind.PHONE),
        ("号码１８６００００３３３３", "号码１８６****３３３３", PiiKind.PHONE),
        (f"身份证号{ID_SAMPLE}", "身份证号110105********002X", PiiKind.ID_CARD),
        (f"身份证号{ID_SAMPLE.lower()}。", "身份证号110105********002x。", PiiKind.ID_CARD),
        ("证件 110105 19491231 002X", "证件 110105 ******** 002X", PiiKind.ID_CARD),
        (f"卡号{CARD_SAMPLE}", "卡号6222***********0128", PiiKind.BANK_CARD),
        ("卡号 6222 0212 3456 7890 128", "卡号 6222 **** **** ***0 128", PiiKind.BANK_CARD),
        ("尾号是 4111 1111 1111 1111 的卡", "尾号是 4111 **** **** 1111 的卡", PiiKind.BANK_CARD),
    ],
)
def test_real_format_samples_are_masked(text: str, masked: str, kind: PiiKind) -> None:
    result = mask_pii(text)
    assert result.text == masked
    assert [f.kind for f in result.findings] == [kind]
    (finding,) = result.findings
    assert result.text[finding.start:finding.end] == finding.masked
    assert result.changed and result.kinds == {kind}


@pytest.mark.parametrize(
    "text",
    [
        "订单号 A1024 已发货",
        "订单 A13812345678 已发货",
        "SN13812345678",
        "号码 12812345678 不是手机号",  # 1[3-9] only
        "号码 10012345678",
        "138123456789 是 12 位",  # a longer digit run
        "9138123456789",
        "编号 2024-13812345678",
        "金额 ¥13812345678",
        "￥13812345678",
        "余额 13812345678.50 元",
        "13,812,345,678",
        "增长 13812345678%",
        "时间 2024-01-15 13:45:30",
        "时间戳 1705312345 与 1705312345678",
        "日期 20240115",
        "身份证 110105194912310021",  # wrong check digit
        "身份证 110105194913310023",  # month 13
        "身份证 000105194912310025",  # no such province
        "卡号 6222021234567890127",  # Luhn fails
        "订单 2024011512345678",  # Luhn-valid? starts with 2: never a card
        "已脱敏：138****5678、110105********002X、6222 **** **** 1234",
        "路由 192.168.13812345678",
        "https://shop.example/item/13812345678x",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    result = mask_pii(text)
    assert result.text == text, result.findings
    assert not result.changed


def test_lists_of_numbers() -> None:
    result = mask_pii("13812345678，13912345678、13712345678/13612345678,13512345678")
    assert result.text == "138****5678，139****5678、137****5678/136****5678,135****5678"


def test_legacy_ids_only_when_asked() -> None:
    text = "老身份证 110105491231002"
    assert mask_pii(text).text == text
    masked = mask_pii(text, [*DEFAULT_KINDS, PiiKind.ID_CARD_15])
    assert masked.text == "老身份证 110105******002"
    assert masked.findings[0].kind is PiiKind.ID_CARD_15


def test_kinds_and_keep_are_configurable() -> None:
    text = f"电话13812345678 身份证{ID_SAMPLE}"
    only_phone = PiiMasker(kinds=["phone"]).mask(text)
    assert only_phone.text == f"电话138****5678 身份证{ID_SAMPLE}"
    hidden = PiiMasker(keep={"phone": (0, 0), PiiKind.ID_CARD: (1, 1)}, mask_char="#").mask(text)
    assert hidden.text == "电话########### 身份证1################X"


@pytest.mark.parametrize(
    "kwargs",
    [{"kinds": ["passport"]}, {"keep": {"phone": (-1, 4)}}, {"mask_char": ""},
     {"mask_char": "**"}, {"mask_char": "0"}, {"mask_char": "-"}],
)
def test_bad_settings_raise_a_typed_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(GuardrailValueError) as caught:
        PiiMasker(**kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, KimiAgentError) and isinstance(caught.value, ValueError)


def test_findings_do_not_carry_the_raw_number() -> None:
    (finding,) = mask_pii("13812345678").findings
    assert "1234" not in repr(finding)


# ---------------------------------------------------------------------------- properties

UNFOLD = str.maketrans("０１２３４５６７８９", "0123456789")
FORMATS = st.sampled_from(["plain", "grouped", "dashed", "full_width"])


def write_phone(number: str, style: str) -> str:
    if style == "grouped":
        return group(number, (3, 4, 4), " ")
    if style == "dashed":
        return group(number, (3, 4, 4), "-")
    return number.translate(FULL_WIDTH) if style == "full_width" else number


@given(before=FILLER, after=FILLER, number=phones, style=FORMATS,
       prefix=st.sampled_from(["", "+86 ", "+86", "0086 ", "（+86）"]))
def test_any_valid_phone_in_chinese_text_is_masked(
    before: str, after: str, number: str, style: str, prefix: str
) -> None:
    written = prefix + write_phone(number, style)
    text = before + written + after
    result = mask_pii(text)
    (finding,) = result.findings
    assert finding.kind is PiiKind.PHONE
    assert (finding.start, finding.end) == (len(before), len(before) + len(written))
    assert result.text == before + finding.masked + after
    national = finding.masked[len(prefix):].translate(UNFOLD).replace(" ", "").replace("-", "")
    assert national == number[:3] + "****" + number[-4:]
    assert mask_pii(result.text).text == result.text


@given(before=FILLER, after=FILLER, number=id_cards, style=FORMATS)
def test_any_valid_id_card_in_chinese_text_is_masked(
    before: str, after: str, number: str, style: str
) -> None:
    assert is_id_card_number(number)
    written = {"grouped": group(number, (6, 8, 4), " "), "dashed": group(number, (6, 8, 4), "-"),
               "full_width": number.translate(FULL_WIDTH)}.get(style, number)
    text = before + written + after
    result = mask_pii(text)
    (finding,) = result.findings
    assert finding.kind is PiiKind.ID_CARD
    assert (finding.start, finding.end) == (len(before), len(before) + len(written))
    assert sum(c == "*" for c in finding.masked) == 8  # the birth date is hidden
    assert mask_pii(result.text).text == result.text


@given(before=FILLER, after=FILLER, number=bank_cards, grouped=st.booleans())
def test_any_valid_bank_card_in_chinese_text_is_masked(
    before: str, after: str, number: str, grouped: bool
) -> None:
    assert is_bank_card_number(number)
    written = card_groups(number) if grouped else number
    text = before + written + after
    result = mask_pii(text)
    (finding,) = result.findings
    assert finding.kind in (PiiKind.BANK_CARD, PiiKind.ID_CARD)  # an 18-digit card may be both
    assert (finding.start, finding.end) == (len(before), len(before) + len(written))
    if finding.kind is PiiKind.BANK_CARD:
        assert sum(c == "*" for c in finding.masked) == len(number) - 8
    assert mask_pii(result.text).text == result.text


@given(before=FILLER, after=FILLER, number=phones,
       extra=st.text(alphabet="0123456789", min_size=1, max_size=3), at_end=st.booleans())
def test_a_phone_inside_a_longer_digit_run_is_not_masked(
    before: str, after: str, number: str, extra: str, at_end: bool
) -> None:
    run = number + extra if at_end else extra + number
    assume(not is_luhn_valid(run) or len(run) < 16 or run[0] not in "34569")
    text = before + run + after
    assert mask_pii(text).text == text


@given(before=FILLER, after=FILLER, number=phones,
       glue=st.sampled_from(["A", "SN", "RF", "x", "¥", "￥", "$", "_"]), left=st.booleans())
def test_a_phone_glued_to_letters_or_a_currency_sign_is_not_masked(
    before: str, after: str, number: str, glue: str, left: bool
) -> None:
    assume(left or glue not in "¥￥$")
    text = before + (glue + number if left else number + glue) + after
    assert mask_pii(text).text == text


@given(before=FILLER, after=FILLER, number=id_cards, wrong=st.sampled_from("0123456789X"))
def test_an_id_with_a_wrong_check_digit_is_not_masked(
    before: str, after: str, number: str, wrong: str
) -> None:
    broken = number[:17] + wrong
    assume(broken != number and not (is_luhn_valid(broken) and broken[0] in "3456"))
    text = before + broken + after
    assert mask_pii(text).text == text


@given(before=FILLER, after=FILLER, number=bank_cards, delta=st.integers(1, 9))
def test_a_card_with_a_wrong_check_digit_is_not_masked(
    before: str, after: str, number: str, delta: int
) -> None:
    broken = number[:-1] + str((int(number[-1]) + delta) % 10)
    assume(not is_id_card_number(broken))
    text = before + broken + after
    assert mask_pii(text).text == text


@given(before=FILLER, after=FILLER,
       number=st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_eleven_digits_not_starting_1_3_to_9_are_not_masked(
    before: str, after: str, number: str
) -> None:
    assume(not (number[0] == "1" and number[1] in "3456789"))
    text = before + number + after
    assert mask_pii(text).text == text


@given(st.sampled_from(["¥", "￥", "RMB ", "金额"]), st.decimals(0, 10**12, places=2),
       st.dates())
def test_amounts_and_dates_are_not_masked(sign: str, amount: object, day: object) -> None:
    text = f"{sign}{amount}元，日期 {day} 与 {day:%Y%m%d}，时间 {day:%Y-%m-%d} 12:30:45"
    assert mask_pii(text).text == text


NUMBERY = st.text(alphabet="0123456789０１２ -+()（）Xx*¥.,:/A中文，。", max_size=60)


@given(st.lists(st.one_of(NUMBERY, phones, id_cards, bank_cards, phones.map(
    lambda n: group(n, (3, 4, 4), " "))), max_size=6).map("".join))
def test_masking_is_idempotent_and_keeps_length(text: str) -> None:
    result = mask_pii(text)
    assert len(result.text) == len(text)
    assert mask_pii(result.text).text == result.text
    previous_end = 0
    for finding in result.findings:
        assert previous_end <= finding.start < finding.end
        previous_end = finding.end
    changed = [i for i, (a, b) in enumerate(zip(text, result.text, strict=True)) if a != b]
    assert all(result.text[i] == "*" and text[i] not in "-+ " for i in changed)


@given(
    st.lists(st.one_of(NUMBERY, FILLER, phones, id_cards, bank_cards,
                       bank_cards.map(card_groups)), max_size=6).map("".join),
    st.lists(st.integers(1, 8), max_size=30),
)
def test_streaming_sends_exactly_what_masking_the_whole_text_gives(
    text: str, cuts: list[int]
) -> None:
    masker = PiiMasker()
    whole = masker.mask(text)
    stream = masker.stream()
    out, index = [], 0
    for size in cuts:
        out.append(stream.feed(text[index:index + size]))
        index += size
        # what was sent is final, and only the holdback of the text so far is waiting
        assert whole.text.startswith("".join(out))
        assert len(stream.held) == masker.holdback(text[:index])
    out.append(stream.feed(text[index:]))
    out.append(stream.flush())
    assert "".join(out) == whole.text
    assert tuple(stream.findings) == whole.findings


def test_streaming_holds_back_only_a_number_that_may_go_on() -> None:
    masker = PiiMasker()
    assert masker.holdback("您好，请问有什么可以帮您？") == 0
    assert masker.holdback("您的电话是 138") == 4  # " 138" may become "138 1234 5678"
    stream = masker.stream()
    assert stream.feed("您的电话是 138") == "您的电话是"
    assert stream.feed("1234") == ""
    assert stream.feed("5678，") == " 138****5678，"
    assert stream.flush() == ""
    with pytest.raises(GuardrailValueError):
        stream.feed("再见")


@given(st.text(max_size=80))
def test_any_text_can_be_masked(text: str) -> None:
    result = mask_pii(text, [*DEFAULT_KINDS, PiiKind.ID_CARD_15])
    assert len(result.text) == len(text)
    assert PiiMasker().holdback(text) <= len(text)
