"""The demo shop's orders, loaded by `OrderStore.seed_demo_data()`.

Prices are in fen (1/100 yuan). Two customers: u1001 (张伟, 上海) and u1002 (李娜, 杭州).

| order | customer | status | what |
|---|---|---|---|
| A1024 | u1001 | shipped, in transit (顺丰) | 无线蓝牙耳机 + 耳机保护套, ¥328.90 |
| A1025 | u1001 | delivered (中通) | 保温杯 ×2, ¥178.00 |
| A1026 | u1002 | paid, not shipped | 纯棉T恤 ×3, ¥237.00 |
| A1027 | u1002 | refunded in full | 智能手环, ¥199.00 |
| A1028 | u1001 | waiting for payment | 有机绿茶礼盒, ¥168.00 |
| A1029 | u1002 | delivered (京东物流), ¥50 refunded | 机械键盘 + 鼠标垫, ¥498.00 |
| A1030 | u1001 | cancelled | 儿童绘本套装, ¥128.00 |
"""

from __future__ import annotations

import sqlite3
from typing import Any

DEMO_ORDERS: list[dict[str, Any]] = [
    {
        "order_id": "A1024",
        "customer_id": "u1001",
        "receiver": "张伟",
        "city": "上海",
        "status": "shipped",
        "created_at": "2025-05-06T10:21:00+08:00",
        "items": [("无线蓝牙耳机", 1, 29900), ("耳机保护套", 1, 2990)],
        "shipment": {
            "carrier": "顺丰速运",
            "tracking_no": "SF1402938475612",
            "status": "in_transit",
            "estimated_delivery": "2025-05-09",
            "events": [
                ("2025-05-06T18:20:00+08:00", "深圳", "快件已揽收"),
                ("2025-05-07T02:15:00+08:00", "深圳", "快件已从深圳转运中心发出"),
                ("2025-05-07T20:40:00+08:00", "上海", "快件已到达上海转运中心"),
            ],
        },
    },
    {
        "order_id": "A1025",
        "customer_id": "u1001",
        "receiver": "张伟",
        "city": "上海",
        "status": "delivered",
        "created_at": "2025-04-28T09:05:00+08:00",
        "items": [("不锈钢保温杯 500ml", 2, 8900)],
        "shipment": {
            "carrier": "中通快递",
            "tracking_no": "ZT78451236985",
            "status": "delivered",
            "estimated_delivery": "2025-05-01",
            "events": [
                ("2025-04-28T17:30:00+08:00", "义乌", "快件已揽收"),
                ("2025-04-29T23:10:00+08:00", "上海", "快件已到达上海浦东分拨中心"),
                ("2025-04-30T08:45:00+08:00", "上海", "快递员正在派送"),
                ("2025-04-30T14:02:00+08:00", "上海", "已签收，签收人：本人"),
            ],
        },
    },
    {
        "order_id": "A1026",
        "customer_id": "u1002",
        "receiver": "李娜",
        "city": "杭州",
        "status": "paid",
        "created_at": "2025-05-08T21:47:00+08:00",
        "items": [("纯棉圆领T恤（白色 L）", 3, 7900)],
    },
    {
        "order_id": "A1027",
        "customer_id": "u1002",
        "receiver": "李娜",
        "city": "杭州",
        "status": "refunded",
        "created_at": "2025-04-20T12:00:00+08:00",
        "items": [("智能手环", 1, 19900)],
        "refunds": [(19900, "七天无理由退货", "2025-04-25T10:00:00+08:00")],
    },
    {
        "order_id": "A1028",
        "customer_id": "u1001",
        "receiver": "张伟",
        "city": "上海",
        "status": "pending_payment",
        "created_at": "2025-05-09T08:30:00+08:00",
        "items": [("有机绿茶礼盒", 1, 16800)],
    },
    {
        "order_id": "A1029",
        "customer_id": "u1002",
        "receiver": "李娜",
        "city": "杭州",
        "status": "delivered",
        "created_at": "2025-04-15T19:12:00+08:00",
        "items": [("机械键盘（青轴）", 1, 45900), ("加大鼠标垫", 1, 3900)],
        "shipment": {
            "carrier": "京东物流",
            "tracking_no": "JD0098765432101",
            "status": "delivered",
            "estimated_delivery": "2025-04-17",
            "events": [
                ("2025-04-16T07:00:00+08:00", "杭州", "您的订单已出库"),
                ("2025-04-16T15:20:00+08:00", "杭州", "配送员正在为您派件"),
                ("2025-04-16T18:05:00+08:00", "杭州", "已签收，感谢您使用京东物流"),
            ],
        },
        "refunds": [(5000, "键帽有划痕，协商部分退款", "2025-04-20T11:30:00+08:00")],
    },
    {
        "order_id": "A1030",
        "customer_id": "u1001",
        "receiver": "张伟",
        "city": "上海",
        "status": "cancelled",
        "created_at": "2025-05-02T16:40:00+08:00",
        "items": [("儿童绘本套装（10册）", 1, 12800)],
    },
]


def insert_demo_orders(conn: sqlite3.Connection) -> None:
    """Insert `DEMO_ORDERS` (the caller holds the transaction and checked the store is empty)."""
    for order in DEMO_ORDERS:
        total = sum(q * p for _, q, p in order["items"])
        conn.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order["order_id"], order["customer_id"], order["receiver"],
             order["city"], order["status"], total, order["created_at"]),
        )
        conn.executemany(
            "INSERT INTO order_items VALUES (?, ?, ?, ?)",
            [(order["order_id"], *item) for item in order["items"]],
        )
        if shipment := order.get("shipment"):
            conn.execute(
                "INSERT INTO shipments VALUES (?, ?, ?, ?, ?)",
                (order["order_id"], shipment["carrier"], shipment["tracking_no"],
                 shipment["status"], shipment["estimated_delivery"]),
            )
            conn.executemany(
                "INSERT INTO shipment_events (order_id, time, location, description) "
                "VALUES (?, ?, ?, ?)",
                [(order["order_id"], *event) for event in shipment["events"]],
            )
        for amount, reason, created_at in order.get("refunds", ()):
            conn.execute(
                "INSERT INTO refunds (order_id, amount_fen, reason, status, created_at) "
                "VALUES (?, ?, ?, 'done', ?)",
                (order["order_id"], amount, reason, created_at),
            )
