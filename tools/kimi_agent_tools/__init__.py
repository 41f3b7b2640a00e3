"""Ready-made tools for kimi-agent, built on its public API only.

现成的工具。Each is an ordinary `@tool` with a Chinese + English description:

| tool | what | needs |
|---|---|---|
| `faq_search(query, top_k=3)` | best FAQ passages with scores (BM25) | deps.knowledge_base |
| `get_order(order_id)` | status, items, total, refundable amount | deps.order_store |
| `get_shipping_status(order_id)` | carrier, tracking number, events | deps.order_store |
| `open_ticket(category, description, order_id=None)` | a support ticket id | deps.order_store |
| `request_refund(order_id, amount, reason)` | a refund; ``requires_approval`` | deps.order_store |
| `handoff_to_human(reason, summary)` | ends the run with a hand-off | — |
| `current_time(timezone="Asia/Shanghai")` | ISO time, date, weekday in Chinese | — |
| `calculate(expression)` | exact decimal arithmetic, no `eval` | — |
| `make_http_get(allowed_hosts, ...)` | a GET tool limited to an allow-list | — |

Binding: tools that need data read it from the run's deps through small protocols
(`HasKnowledgeBase`, `HasOrderStore`); `ShopDeps` satisfies both. `http_get` is configured
by its factory instead, because its allow-list is policy, not per-run data.

Errors: see `kimi_agent_tools.errors` — bad input raises (the model reads the message), a
search with no hits returns an empty result.

Guardrail helpers for Chinese customer service (PII masking, sensitive words, amounts and
ids no tool confirmed) are plain text functions in `kimi_agent_tools.guardrails`.

The framework never imports this package.
"""

from __future__ import annotations

from kimi_agent_tools.calculator import calculate
from kimi_agent_tools.clock import current_time
from kimi_agent_tools.deps import ShopDeps
from kimi_agent_tools.errors import InvalidInputError, NotFoundError, RefusedError, ToolFailure
from kimi_agent_tools.faq import FaqEntry, FaqHit, HasKnowledgeBase, KnowledgeBase, faq_search
from kimi_agent_tools.handoff import HandoffReason, handoff_to_human
from kimi_agent_tools.http_get import HttpGetPolicy, make_http_get
from kimi_agent_tools.order_store import OrderStore
from kimi_agent_tools.orders import (
    HasOrderStore,
    TicketCategory,
    get_order,
    get_shipping_status,
    open_ticket,
    request_refund,
)

CUSTOMER_SERVICE_TOOLS = (
    faq_search,
    get_order,
    get_shipping_status,
    open_ticket,
    request_refund,
    handoff_to_human,
    current_time,
    calculate,
)
"""The tools of the customer-service demo, in a stable order (for a stable prompt prefix)."""

__all__ = [
    "CUSTOMER_SERVICE_TOOLS",
    "FaqEntry",
    "FaqHit",
    "HandoffReason",
    "HasKnowledgeBase",
    "HasOrderStore",
    "HttpGetPolicy",
    "InvalidInputError",
    "KnowledgeBase",
    "NotFoundError",
    "OrderStore",
    "RefusedError",
    "ShopDeps",
    "TicketCategory",
    "ToolFailure",
    "calculate",
    "current_time",
    "faq_search",
    "get_order",
    "get_shipping_status",
    "handoff_to_human",
    "make_http_get",
    "open_ticket",
    "request_refund",
]
