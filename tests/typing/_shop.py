"""Deps shared by the typing cases: a protocol, a class satisfying it, and an unrelated one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kimi_agent import RunContext, tool


class HasOrders(Protocol):
    """What a tool that reads orders needs of the deps."""

    @property
    def orders(self) -> dict[str, str]: ...


@dataclass
class Shop:
    """深圳小店: satisfies `HasOrders` and has more."""

    orders: dict[str, str] = field(default_factory=lambda: {"A1024": "已发货"})
    name: str = "深圳小店"


@dataclass
class Weather:
    """Deps of another agent entirely."""

    city: str = "北京"


@tool
def order_status(ctx: RunContext[HasOrders], order_id: str) -> str:
    """查询订单状态。

    Args:
        order_id: 订单号。
    """
    return ctx.deps.orders.get(order_id, "没有这个订单")


@tool(timeout=5.0)
def shop_name(ctx: RunContext[Shop]) -> str:
    """店铺名称。"""
    return ctx.deps.name


@tool
def forecast(ctx: RunContext[Weather]) -> str:
    """今天的天气。"""
    return f"{ctx.deps.city}：晴"


@tool
def clock() -> str:
    """现在几点。"""
    return "12:00"
