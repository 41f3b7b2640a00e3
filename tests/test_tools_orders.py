"""Order, shipping, ticket and refund tools on SQLite."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from kimi_agent_tools import (
    InvalidInputError,
    KnowledgeBase,
    NotFoundError,
    OrderStore,
    RefusedError,
    ShopDeps,
    get_order,
    get_shipping_status,
    open_ticket,
    request_refund,
)

from kimi_agent import RunContext, Tool
from kimi_agent.tooling._dialect import check_moonshot


@pytest.fixture
def store(tmp_path: Path) -> OrderStore:
    store = OrderStore(tmp_path / "shop.db")
    assert store.seed_demo_data() is True
    return store


def ctx(store: OrderStore, customer_id: str | None = None) -> RunContext[ShopDeps]:
    return RunContext(deps=ShopDeps(store, KnowledgeBase([]), customer_id), run_id="test")


# --------------------------------------------------------------------------- schemas


def test_tools_have_the_expected_schemas() -> None:
    for each in (get_order, get_shipping_status, open_ticket, request_refund):
        assert isinstance(each, Tool)
        assert check_moonshot(each.parameters, "ultra") == []
        assert "ctx" not in each.parameters["properties"]
    assert get_order.parameters["required"] == ["order_id"]
    assert get_shipping_status.parameters["required"] == ["order_id"]
    ticket = open_ticket.parameters
    assert ticket["required"] == ["category", "description"]
    assert ticket["properties"]["category"]["enum"] == [
        "shipping", "product_quality", "return_refund", "invoice", "account", "other"
    ]
    assert "order_id" not in ticket["required"]
    refund = request_refund.parameters
    assert refund["required"] == ["order_id", "amount", "reason"]
    assert refund["properties"]["amount"]["type"] == "number"


def test_only_the_refund_needs_approval() -> None:
    assert request_refund.requires_approval is True
    assert not get_order.requires_approval
    assert not get_shipping_status.requires_approval
    assert not open_ticket.requires_approval


# --------------------------------------------------------------------------- the store


def test_schema_is_created_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "orders.db"
    store = OrderStore(path)
    assert not path.exists()  # nothing happens until the first call
    with pytest.raises(NotFoundError):
        store.get_order("A1024")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "order_items", "shipments", "shipment_events", "tickets", "refunds"} <= tables


def test_seeding_twice_does_nothing(store: OrderStore) -> None:
    assert store.seed_demo_data() is False
    assert store.get_order("A1024")["total"] == "328.90"


def test_memory_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="file path"):
        OrderStore(":memory:")


def test_chinese_text_is_stored_intact(store: OrderStore) -> None:
    with sqlite3.connect(store.path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM order_items ORDER BY rowid")]
    assert names[0] == "无线蓝牙耳机"
    assert "纯棉圆领T恤（白色 L）" in names


# --------------------------------------------------------------------------- look-ups


def test_get_order(store: OrderStore) -> None:
    order = get_order(ctx(store), "A1024")
    assert order["order_id"] == "A1024"
    assert order["status"] == "shipped"
    assert order["status_text"] == "已发货"
    assert order["items"] == [
        {"name": "无线蓝牙耳机", "quantity": 1, "unit_price": "299.00"},
        {"name": "耳机保护套", "quantity": 1, "unit_price": "29.90"},
    ]
    assert (order["total"], order["refunded"], order["refundable"]) == ("328.90", "0.00", "328.90")
    assert order["shipping"] == {"carrier": "顺丰速运", "tracking_no": "SF1402938475612"}
    assert order["receiver"] == "张*"  # masked: an order id alone does not reveal a full name


def test_order_ids_are_normalised(store: OrderStore) -> None:
    assert get_order(ctx(store), "  #a1024 ")["order_id"] == "A1024"


def test_unknown_order_is_a_bilingual_not_found_error(store: OrderStore) -> None:
    with pytest.raises(NotFoundError) as error:
        get_order(ctx(store), "A9999")
    assert "未找到订单 A9999" in str(error.value)
    assert "not found" in str(error.value)
    with pytest.raises(NotFoundError):
        get_shipping_status(ctx(store), "Z1")


def test_a_customer_sees_only_their_own_orders(store: OrderStore) -> None:
    assert get_order(ctx(store, "u1001"), "A1024")["order_id"] == "A1024"
    with pytest.raises(NotFoundError):  # A1026 belongs to u1002: indistinguishable from unknown
        get_order(ctx(store, "u1001"), "A1026")
    with pytest.raises(NotFoundError):
        request_refund(ctx(store, "u1001"), "A1029", 10, "不是我的订单")
    assert get_order(ctx(store, None), "A1026")["status"] == "paid"  # staff see everything


def test_shipping_status_newest_event_first(store: OrderStore) -> None:
    status = get_shipping_status(ctx(store), "A1024")
    assert status["shipped"] is True
    assert status["carrier"] == "顺丰速运"
    assert status["status_text"] == "运输中"
    assert status["estimated_delivery"] == "2025-05-09"
    assert [e["description"] for e in status["events"]] == [
        "快件已到达上海转运中心", "快件已从深圳转运中心发出", "快件已揽收"
    ]


def test_shipping_status_of_an_order_not_shipped_is_a_result_not_an_error(
    store: OrderStore,
) -> None:
    status = get_shipping_status(ctx(store), "A1026")
    assert status["shipped"] is False
    assert status["order_status"] == "paid"
    assert "尚未发货" in status["message"]


# --------------------------------------------------------------------------- tickets


def test_open_ticket_returns_an_id_and_stores_the_ticket(store: OrderStore) -> None:
    first = open_ticket(ctx(store, "u1001"), "product_quality", "保温杯盖子漏水", "a1025")
    second = open_ticket(ctx(store, "u1001"), "account", "想修改绑定手机号")
    assert first["ticket_id"] == "TK000001"
    assert second["ticket_id"] == "TK000002"
    assert "TK000001" in first["message"]
    saved = store.get_ticket("TK000001")
    assert saved["order_id"] == "A1025"
    assert saved["customer_id"] == "u1001"
    assert saved["category"] == "product_quality"
    assert saved["description"] == "保温杯盖子漏水"
    assert saved["status"] == "open"
    assert store.get_ticket("tk000002")["order_id"] is None


def test_ticket_for_an_unknown_order_or_without_description_is_refused(
    store: OrderStore,
) -> None:
    with pytest.raises(NotFoundError):
        open_ticket(ctx(store), "shipping", "没收到货", "A9999")
    with pytest.raises(InvalidInputError, match="不能为空"):
        open_ticket(ctx(store), "shipping", "   ")
    with pytest.raises(InvalidInputError, match="太长"):
        open_ticket(ctx(store), "other", "很" * 5000)
    with pytest.raises(NotFoundError):
        store.get_ticket("TK999999")


# --------------------------------------------------------------------------- refunds


def test_partial_then_full_refund(store: OrderStore) -> None:
    first = request_refund(ctx(store), "A1024", 28.9, "保护套不需要了")
    assert first["amount"] == "28.90"
    assert first["fully_refunded"] is False
    assert first["refund_id"].startswith("RF")
    assert "已提交" in first["message"]
    order = get_order(ctx(store), "A1024")
    assert (order["refunded"], order["refundable"], order["status"]) == (
        "28.90", "300.00", "shipped"
    )
    last = request_refund(ctx(store), "A1024", 300, "耳机也退了")
    assert last["fully_refunded"] is True
    assert get_order(ctx(store), "A1024")["status"] == "refunded"


def test_refund_over_the_total_is_refused(store: OrderStore) -> None:
    with pytest.raises(RefusedError) as error:
        request_refund(ctx(store), "A1024", 500, "全部退款")
    message = str(error.value)
    assert "超过可退金额 ¥328.90" in message and "more than" in message
    assert get_order(ctx(store), "A1024")["refunded"] == "0.00"  # nothing was recorded


def test_refund_over_what_is_left_after_an_earlier_refund(store: OrderStore) -> None:
    # A1029: total 498.00, 50.00 refunded already
    with pytest.raises(RefusedError, match=r"可退金额 ¥448\.00"):
        request_refund(ctx(store), "A1029", 448.01, "再退一些")
    assert request_refund(ctx(store), "A1029", 448, "全部退")["fully_refunded"] is True


@pytest.mark.parametrize(
    ("order_id", "fragment"),
    [
        ("A1027", "已全额退款"),  # already refunded
        ("A1028", "待付款"),  # not paid
        ("A1030", "已取消"),  # cancelled
    ],
)
def test_refund_refused_for_orders_that_cannot_be_refunded(
    store: OrderStore, order_id: str, fragment: str
) -> None:
    with pytest.raises(RefusedError, match=fragment):
        request_refund(ctx(store), order_id, 1, "想退款")


def test_refund_of_unknown_order(store: OrderStore) -> None:
    with pytest.raises(NotFoundError, match="A0000"):
        request_refund(ctx(store), "A0000", 1, "想退款")


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [(0, "正数"), (-5, "正数"), (0.001, "两位小数"), (float("nan"), "正数"),
     (float("inf"), "正数")],
)
def test_refund_amount_must_be_a_positive_yuan_amount(
    store: OrderStore, amount: float, fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        request_refund(ctx(store), "A1024", amount, "原因")


def test_refund_needs_a_reason(store: OrderStore) -> None:
    with pytest.raises(InvalidInputError, match="退款原因不能为空"):
        request_refund(ctx(store), "A1024", 10, "")


def test_concurrent_refunds_never_exceed_the_total(store: OrderStore) -> None:
    """Check-then-write is one IMMEDIATE transaction: of 8 racing full refunds, one wins."""
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def refund() -> None:
        barrier.wait()
        try:
            request_refund(ctx(store), "A1025", 178, "并发退款")
            outcomes.append("ok")
        except RefusedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=refund) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7
    assert get_order(ctx(store), "A1025")["refunded"] == "178.00"


def test_data_persists_across_store_instances(store: OrderStore) -> None:
    request_refund(ctx(store), "A1025", 20, "杯子有划痕")
    again = OrderStore(store.path)
    assert again.get_order("A1025")["refunded"] == "20.00"
