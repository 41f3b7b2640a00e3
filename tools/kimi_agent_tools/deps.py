"""`ShopDeps`: one deps object that serves every shop tool.

The tools ask for what they need through small protocols — `HasKnowledgeBase` (faq_search),
`HasOrderStore` (the order tools) — so any object with those attributes works. `ShopDeps`
is the ready-made one:

    deps = ShopDeps(OrderStore("shop.db"), KnowledgeBase.from_paths("faq/"), customer_id="u1001")
    await agent.run("我的订单到哪了？", deps=deps)

`customer_id` limits the order tools to that customer's orders (None: all orders, e.g. for
staff). `handoff_queues` maps a hand-off reason to a queue name for `handoff_to_human`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kimi_agent_tools.faq import KnowledgeBase
from kimi_agent_tools.order_store import OrderStore

__all__ = ["ShopDeps"]


@dataclass(frozen=True)
class ShopDeps:
    """The deps of a shop's customer-service agent."""

    order_store: OrderStore
    knowledge_base: KnowledgeBase
    customer_id: str | None = None
    handoff_queues: Mapping[str, str] = field(default_factory=dict)
