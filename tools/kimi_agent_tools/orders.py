"""Order, shipping, ticket and refund tools, backed by `kimi_agent_tools.order_store.OrderStore`.

订单工具。The tools read the store from the run's deps: any object with an `order_store`
attribute (`HasOrderStore`), e.g. `tools.ShopDeps`. If the deps also have a `customer_id`
that is not None, the tools only see that customer's orders (others are "not found"), which
is what a bot talking to one signed-in customer wants.

Errors follow `kimi_agent_tools.errors`: an unknown order is a `NotFoundError`, a refund that
cannot be made a `RefusedError`, bad arguments an `InvalidInputError` — each with a Chinese +
English message the model can pass on. An order that has not shipped is not an error: the shipping
tool says ``"shipped": false``.

The store is blocking SQLite; the tools are ordinary functions, which the executor runs in
worker threads. `request_refund` moves money, so it has ``requires_approval=True``: the run
pauses until a person approves the call.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from kimi_agent import RunContext, tool
from kimi_agent_tools.order_store import OrderStore

__all__ = [
    "HasOrderStore",
    "TicketCategory",
    "get_order",
    "get_shipping_status",
    "open_ticket",
    "request_refund",
]

TicketCategory = Literal[
    "shipping", "product_quality", "return_refund", "invoice", "account", "other"
]
"""Ticket categories, for routing: 物流 / 商品质量 / 退换货 / 发票 / 账户 / 其他."""


class HasOrderStore(Protocol):
    """Deps that carry an order store (e.g. `tools.ShopDeps`).

    Deps may also have ``customer_id: str | None`` to limit the tools to one customer.
    """

    @property
    def order_store(self) -> OrderStore: ...


def _customer(ctx: RunContext[HasOrderStore]) -> str | None:
    customer_id = getattr(ctx.deps, "customer_id", None)
    return customer_id if isinstance(customer_id, str) else None


@tool
def get_order(ctx: RunContext[HasOrderStore], order_id: str) -> dict[str, Any]:
    """查询订单详情：状态、商品、金额、可退金额、快递单号。Look up an order.

    Returns the status (with a Chinese label), items, total, amount already refunded and
    amount still refundable (yuan, as strings), and the carrier and tracking number if shipped.

    Args:
        order_id: 订单号 / order number, e.g. "A1024".
    """
    return ctx.deps.order_store.get_order(order_id, customer_id=_customer(ctx))


@tool
def get_shipping_status(ctx: RunContext[HasOrderStore], order_id: str) -> dict[str, Any]:
    """查询订单的物流状态和轨迹。Get the shipping status and tracking events of an order.

    Events are newest first. An order that has not shipped yet gives ``"shipped": false``
    and its order status instead.

    Args:
        order_id: 订单号 / order number, e.g. "A1024".
    """
    return ctx.deps.order_store.get_shipping_status(order_id, customer_id=_customer(ctx))


@tool
def open_ticket(
    ctx: RunContext[HasOrderStore],
    category: TicketCategory,
    description: str,
    order_id: str | None = None,
) -> dict[str, Any]:
    """为客户创建售后工单，返回工单号。Open a support ticket and return its id.

    Use it for problems that need follow-up by staff (damaged goods, missing invoice, …).

    Args:
        category: 工单类别：shipping 物流、product_quality 商品质量、return_refund 退换货、
            invoice 发票、account 账户、other 其他 / the ticket category.
        description: 问题描述，写清客户诉求 / what the customer needs, in their words.
        order_id: 相关订单号（可选）/ the order concerned, if any, e.g. "A1024".
    """
    ticket_id = ctx.deps.order_store.open_ticket(
        category, description, order_id, customer_id=_customer(ctx)
    )
    return {
        "ticket_id": ticket_id,
        "status": "open",
        "message": f"已创建工单 {ticket_id}，客服会在 24 小时内跟进。"
        f"Ticket {ticket_id} was opened; staff will follow up within 24 hours.",
    }


@tool(requires_approval=True)
def request_refund(
    ctx: RunContext[HasOrderStore], order_id: str, amount: float, reason: str
) -> dict[str, Any]:
    """为订单申请退款（需人工审批）。Refund part or all of an order (needs human approval).

    Refused for unknown, unpaid, cancelled or fully refunded orders and for amounts over
    the refundable amount (check it with get_order first).

    Args:
        order_id: 订单号 / order number, e.g. "A1024".
        amount: 退款金额，单位元，最多两位小数 / amount in yuan, e.g. 99.5.
        reason: 退款原因 / why the customer wants the refund.
    """
    return ctx.deps.order_store.request_refund(
        order_id, amount, reason, customer_id=_customer(ctx)
    )
