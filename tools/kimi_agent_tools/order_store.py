"""`OrderStore`: orders, shipments, tickets and refunds of a small online shop, in SQLite.

订单库。The store behind the order tools (`kimi_agent_tools.orders`). It uses only the standard
library's `sqlite3` and is safe to share between threads and processes: every operation opens its
own connection and runs in one transaction (writes take the write lock up front with
``BEGIN IMMEDIATE``, so "check the refundable amount, then record the refund" cannot race),
and the database runs in WAL mode so readers never wait for writers. The schema is created
on first use.

Money is stored as integer fen (cents) and shown as strings such as ``"299.00"`` (yuan), so
amounts never pick up floating-point noise. Times are ISO 8601 in China Standard Time.

`seed_demo_data()` fills an empty store with a few orders of a Chinese online shop (order ids
A1024–A1030, customers u1001 and u1002), used by the demo and the tests.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from kimi_agent.sessions import enable_wal
from kimi_agent_tools._demo_orders import insert_demo_orders
from kimi_agent_tools.errors import InvalidInputError, NotFoundError, RefusedError

__all__ = ["ORDER_STATUS_TEXT", "SHIPMENT_STATUS_TEXT", "OrderStore", "format_yuan", "to_fen"]

CHINA_TZ = timezone(timedelta(hours=8), "CST")

ORDER_STATUS_TEXT = {
    "pending_payment": "待付款",
    "paid": "已付款，待发货",
    "shipped": "已发货",
    "delivered": "已签收",
    "cancelled": "已取消",
    "refunded": "已退款",
}
SHIPMENT_STATUS_TEXT = {
    "in_transit": "运输中",
    "out_for_delivery": "派送中",
    "delivered": "已签收",
    "exception": "物流异常",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    city        TEXT NOT NULL,
    status      TEXT NOT NULL,
    total_fen   INTEGER NOT NULL CHECK (total_fen >= 0),
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_items (
    order_id       TEXT NOT NULL REFERENCES orders(order_id),
    name           TEXT NOT NULL,
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_fen INTEGER NOT NULL CHECK (unit_price_fen >= 0)
);
CREATE TABLE IF NOT EXISTS shipments (
    order_id           TEXT PRIMARY KEY REFERENCES orders(order_id),
    carrier            TEXT NOT NULL,
    tracking_no        TEXT NOT NULL,
    status             TEXT NOT NULL,
    estimated_delivery TEXT
);
CREATE TABLE IF NOT EXISTS shipment_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT NOT NULL REFERENCES orders(order_id),
    time        TEXT NOT NULL,
    location    TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT REFERENCES orders(order_id),
    customer_id TEXT,
    category    TEXT NOT NULL,
    description TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open',
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   TEXT NOT NULL REFERENCES orders(order_id),
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    reason     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'processing',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS order_items_by_order ON order_items(order_id);
CREATE INDEX IF NOT EXISTS shipment_events_by_order ON shipment_events(order_id, time);
CREATE INDEX IF NOT EXISTS refunds_by_order ON refunds(order_id);
"""

_MAX_TEXT = 2000


def to_fen(amount: float | int | str | Decimal) -> int:
    """A yuan amount as integer fen; refuses non-positive, non-finite or sub-fen amounts."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as error:
        raise InvalidInputError(f"金额无效：{amount!r}。Invalid amount: {amount!r}.") from error
    if not value.is_finite() or value <= 0:
        raise InvalidInputError(
            f"金额必须是正数：{amount!r}。The amount must be a positive number."
        )
    fen = value * 100
    if fen != fen.to_integral_value():
        raise InvalidInputError(
            f"金额最多两位小数：{amount!r}。The amount can have at most two decimal places."
        )
    return int(fen)


def format_yuan(fen: int) -> str:
    """Integer fen as a yuan string: 32890 → "328.90"."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def normalize_order_id(order_id: str) -> str:
    """Order ids as customers type them: " #a1024 " → "A1024"."""
    return order_id.strip().lstrip("#＃").strip().upper()


def _now() -> datetime:
    return datetime.now(CHINA_TZ)


def _not_found(order_id: str) -> NotFoundError:
    return NotFoundError(
        f"未找到订单 {order_id}，请核对订单号。Order {order_id!r} not found; check the number."
    )


def _text(value: str, what_zh: str, what_en: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInputError(f"{what_zh}不能为空。The {what_en} must not be empty.")
    if len(value) > _MAX_TEXT:
        raise InvalidInputError(
            f"{what_zh}太长（最多 {_MAX_TEXT} 字）。The {what_en} is too long "
            f"(at most {_MAX_TEXT} characters)."
        )
    return value


class OrderStore:
    """Orders, shipping, tickets and refunds in one SQLite file (created if missing).

    Every look-up takes an optional `customer_id`: when given, orders of other customers are
    reported as not found, so a bot serving one signed-in customer cannot read another's
    orders by guessing ids.
    """

    def __init__(self, path: str | os.PathLike[str], *, now: Callable[[], datetime] = _now):
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValueError(
                "OrderStore needs a file path (each call opens its own connection); "
                "use a temporary file instead of ':memory:'"
            )
        self.path = Path(path)
        self._now = now
        self._ready = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    def _ensure_schema(self) -> None:
        with self._lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                enable_wal(conn)
                conn.executescript(_SCHEMA)
            finally:
                conn.close()
            self._ready = True

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        self._ensure_schema()
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _order_row(
        self, conn: sqlite3.Connection, order_id: str, customer_id: str | None
    ) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        if row is None or (customer_id is not None and row["customer_id"] != customer_id):
            raise _not_found(order_id)
        return row

    @staticmethod
    def _refunded_fen(conn: sqlite3.Connection, order_id: str) -> int:
        total: int = conn.execute(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE order_id = ?", (order_id,)
        ).fetchone()[0]
        return total

    # ------------------------------------------------------------------ look-ups

    def get_order(self, order_id: str, *, customer_id: str | None = None) -> dict[str, Any]:
        """An order as the model should see it; `NotFoundError` if it does not exist."""
        order_id = normalize_order_id(order_id)
        with self._transaction() as conn:
            row = self._order_row(conn, order_id, customer_id)
            items = conn.execute(
                "SELECT name, quantity, unit_price_fen FROM order_items WHERE order_id = ? "
                "ORDER BY rowid",
                (order_id,),
            ).fetchall()
            shipment = conn.execute(
                "SELECT carrier, tracking_no FROM shipments WHERE order_id = ?", (order_id,)
            ).fetchone()
            refunded = self._refunded_fen(conn, order_id)
        refundable = row["total_fen"] - refunded if row["status"] in _REFUNDABLE else 0
        return {
            "order_id": order_id,
            "status": row["status"],
            "status_text": ORDER_STATUS_TEXT.get(row["status"], row["status"]),
            "created_at": row["created_at"],
            "items": [
                {"name": i["name"], "quantity": i["quantity"],
                 "unit_price": format_yuan(i["unit_price_fen"])}
                for i in items
            ],
            "currency": "CNY",
            "total": format_yuan(row["total_fen"]),
            "refunded": format_yuan(refunded),
            "refundable": format_yuan(refundable),
            "receiver": _mask_name(row["receiver"]),
            "city": row["city"],
            "shipping": dict(shipment) if shipment else None,
        }

    def get_shipping_status(
        self, order_id: str, *, customer_id: str | None = None, max_events: int = 10
    ) -> dict[str, Any]:
        """Carrier, tracking number and events (newest first), or `shipped: False`."""
        order_id = normalize_order_id(order_id)
        with self._transaction() as conn:
            row = self._order_row(conn, order_id, customer_id)
            shipment = conn.execute(
                "SELECT * FROM shipments WHERE order_id = ?", (order_id,)
            ).fetchone()
            events = conn.execute(
                "SELECT time, location, description FROM shipment_events WHERE order_id = ? "
                "ORDER BY time DESC, id DESC LIMIT ?",
                (order_id, max_events),
            ).fetchall()
        if shipment is None:
            status_text = ORDER_STATUS_TEXT.get(row["status"], row["status"])
            return {
                "order_id": order_id,
                "shipped": False,
                "order_status": row["status"],
                "status_text": status_text,
                "message": f"订单{status_text}，尚未发货，暂无物流信息。"
                "The order has not shipped yet; there is no tracking information.",
            }
        return {
            "order_id": order_id,
            "shipped": True,
            "carrier": shipment["carrier"],
            "tracking_no": shipment["tracking_no"],
            "status": shipment["status"],
            "status_text": SHIPMENT_STATUS_TEXT.get(shipment["status"], shipment["status"]),
            "estimated_delivery": shipment["estimated_delivery"],
            "events": [dict(e) for e in events],
        }

    def get_ticket(self, ticket_id: str) -> dict[str, Any]:
        """A ticket by its id ("TK000001"); `NotFoundError` if there is none."""
        number = ticket_id.strip().upper().removeprefix("TK")
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM tickets WHERE id = ?", (int(number) if number.isdigit() else -1,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"未找到工单 {ticket_id}。Ticket {ticket_id!r} not found.")
        return {**dict(row), "ticket_id": _ticket_id(row["id"])}

    # ------------------------------------------------------------------ changes

    def open_ticket(
        self,
        category: str,
        description: str,
        order_id: str | None = None,
        *,
        customer_id: str | None = None,
    ) -> str:
        """Record a support ticket and return its id, e.g. "TK000001"."""
        description = _text(description, "问题描述", "description")
        with self._transaction(write=True) as conn:
            if order_id is not None and order_id.strip():
                order_id = normalize_order_id(order_id)
                self._order_row(conn, order_id, customer_id)
            else:
                order_id = None
            cursor = conn.execute(
                "INSERT INTO tickets (order_id, customer_id, category, description, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (order_id, customer_id, category, description, self._now().isoformat()),
            )
        assert cursor.lastrowid is not None
        return _ticket_id(cursor.lastrowid)

    def request_refund(
        self,
        order_id: str,
        amount: float | int | str | Decimal,
        reason: str,
        *,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """Refund `amount` yuan of an order, atomically; refuses what cannot be refunded.

        Refused: unknown orders, unpaid or cancelled orders, orders already refunded in
        full, and amounts over what is left to refund (the total minus earlier refunds).
        A refund of everything that is left marks the order "refunded".
        """
        order_id = normalize_order_id(order_id)
        fen = to_fen(amount)
        reason = _text(reason, "退款原因", "reason")
        with self._transaction(write=True) as conn:
            row = self._order_row(conn, order_id, customer_id)
            status = row["status"]
            if status == "refunded":
                raise RefusedError(
                    f"订单 {order_id} 已全额退款，不能重复退款。"
                    f"Order {order_id} has already been refunded in full."
                )
            if status not in _REFUNDABLE:
                raise RefusedError(
                    f"订单 {order_id} 状态为“{ORDER_STATUS_TEXT.get(status, status)}”，"
                    f"不能退款。Order {order_id} is {status}; it cannot be refunded."
                )
            refunded = self._refunded_fen(conn, order_id)
            left = row["total_fen"] - refunded
            if fen > left:
                raise RefusedError(
                    f"退款金额 ¥{format_yuan(fen)} 超过可退金额 ¥{format_yuan(left)}"
                    f"（订单总额 ¥{format_yuan(row['total_fen'])}，"
                    f"已退 ¥{format_yuan(refunded)}）。"
                    f"The refund of {format_yuan(fen)} yuan is more than the "
                    f"{format_yuan(left)} yuan left to refund on order {order_id}."
                )
            cursor = conn.execute(
                "INSERT INTO refunds (order_id, amount_fen, reason, created_at) "
                "VALUES (?, ?, ?, ?)",
                (order_id, fen, reason, self._now().isoformat()),
            )
            if fen == left:
                conn.execute(
                    "UPDATE orders SET status = 'refunded' WHERE order_id = ?", (order_id,)
                )
        assert cursor.lastrowid is not None
        return {
            "refund_id": f"RF{cursor.lastrowid:06d}",
            "order_id": order_id,
            "amount": format_yuan(fen),
            "currency": "CNY",
            "status": "processing",
            "fully_refunded": fen == left,
            "message": f"退款 ¥{format_yuan(fen)} 已提交，预计 1–3 个工作日原路退回。"
            "The refund was submitted and reaches the original payment method in 1–3 "
            "working days.",
        }

    # ------------------------------------------------------------------ demo data

    def seed_demo_data(self) -> bool:
        """Fill an empty store with the demo shop's orders; False if it already has orders."""
        with self._transaction(write=True) as conn:
            if conn.execute("SELECT 1 FROM orders LIMIT 1").fetchone():
                return False
            insert_demo_orders(conn)
        return True


_REFUNDABLE = frozenset({"paid", "shipped", "delivered"})


def _ticket_id(number: int) -> str:
    return f"TK{number:06d}"


def _mask_name(name: str) -> str:
    """张伟 → 张*, 欧阳娜娜 → 欧***: enough for the customer to recognise, no more."""
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""
