"""The guardrails on what the demo shop's tools really return: nothing in an order or a
shipment is mistaken for personal data, and an answer quoting a refund is confirmed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kimi_agent_tools import OrderStore
from kimi_agent_tools._demo_orders import DEMO_ORDERS
from kimi_agent_tools.guardrails import ClaimChecker, mask_pii


@pytest.fixture
def store(tmp_path: Path) -> OrderStore:
    store = OrderStore(tmp_path / "shop.db")
    store.seed_demo_data()
    return store


def tool_texts(store: OrderStore) -> list[str]:
    texts = []
    for order in DEMO_ORDERS:
        texts.append(json.dumps(store.get_order(order["order_id"]), ensure_ascii=False))
        texts.append(json.dumps(store.get_shipping_status(order["order_id"]),
                                ensure_ascii=False))
    return texts


def test_order_and_shipping_results_are_not_masked(store: OrderStore) -> None:
    for text in tool_texts(store):
        assert mask_pii(text).text == text


def test_an_answer_quoting_a_refund_is_confirmed(store: OrderStore) -> None:
    checker = ClaimChecker(tool_texts(store))
    refund = store.request_refund("A1025", "89.00", "保温杯有划痕")
    checker.add(refund)
    good = (f"已为您提交订单 A1025 的退款 ¥89.00，退款单号 {refund['refund_id']}，"
            "预计 1–3 个工作日原路退回。")
    assert checker.unconfirmed(good) == []
    bad = "已为您提交订单 A1025 的退款 ¥178.50，退款单号 RF000099。"
    assert [c.text for c in checker.unconfirmed(bad)] == ["¥178.50", "RF000099"]
