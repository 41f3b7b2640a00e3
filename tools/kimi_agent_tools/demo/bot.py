"""The shop bot itself: instructions, tools and deps — the part a real service would keep.

网店智能客服。The agent is built from the ready-made tools in `tools/` and reads its data
through `tools.ShopDeps`: an `OrderStore` (SQLite, seeded with the demo shop's orders on
first use) and a `KnowledgeBase` loaded from the Markdown/JSON files in `knowledge/`.

In a real shop the order system and the FAQ service sit behind the network. The demo's
stores add a short, fixed delay per look-up (`RemoteOrderStore`, `RemoteKnowledgeBase`) so
that what the agent does about it is visible: the model asks for several look-ups at once and
the agent runs them concurrently.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kimi_agent import Agent, GatewayClient, RunHooks
from kimi_agent_tools import (
    CUSTOMER_SERVICE_TOOLS,
    FaqEntry,
    FaqHit,
    KnowledgeBase,
    OrderStore,
    ShopDeps,
    get_order,
    handoff_to_human,
    request_refund,
)
from kimi_agent_tools.guardrails.agent import PiiGuardrail

__all__ = [
    "DEMO_CUSTOMER",
    "HANDOFF_QUEUES",
    "INSTRUCTIONS",
    "KNOWLEDGE_DIR",
    "REFUNDS_INSTRUCTIONS",
    "RemoteKnowledgeBase",
    "RemoteOrderStore",
    "build_agent",
    "chat_deps",
    "make_deps",
]

KNOWLEDGE_DIR = Path(__file__).resolve().parent / "knowledge"

DEMO_CUSTOMER = "u1001"
"""The signed-in customer of the demo (张伟, 上海: orders A1024, A1025, A1028, A1030)."""

HANDOFF_QUEUES: Mapping[str, str] = {
    "complaint": "投诉专席",
    "refund_dispute": "售后专席",
    "order_problem": "订单组",
    "technical_issue": "技术支持",
    "customer_request": "人工客服",
    "other": "人工客服",
}
"""Hand-off reason → the team that takes the conversation (what a service routes on)."""

INSTRUCTIONS = """\
你是「小象优选」网店的智能客服，名字叫小象。你正在和一位已登录的顾客对话。

工作方式：
1. 先查再答：涉及订单、物流、退款的问题，一定先用工具查询（get_order、get_shipping_status），\
政策类问题（退换货、运费、发票、会员等）先用 faq_search 检索知识库，不要凭记忆编造。
2. 能同时查的就同时查：一个问题需要多项信息时，在同一次回复里并行调用多个工具。
3. 退款：调用 transfer_to_refunds 转给退款专员处理。
4. 顾客投诉、情绪激动、明确要求人工，或问题超出工具能力时，调用 handoff_to_human 转人工，\
并告诉顾客会有专人跟进。
5. 语气亲切、简洁，使用简体中文；金额写成“¥89.00”的形式；不要透露其他顾客的信息。
"""
"""The system prompt. It never changes between calls: a stable prefix is what Kimi's
automatic prompt caching reuses."""


class RemoteOrderStore(OrderStore):
    """An `OrderStore` that answers like a service across the network: each look-up waits
    a fixed `delay` (seconds, per method) before reading the SQLite file.

    The tools are plain functions that the agent runs in worker threads, so these waits
    overlap when the model asks for several look-ups at once.
    """

    def __init__(self, path: str | Path, *, delays: Mapping[str, float] | None = None) -> None:
        super().__init__(path)
        self.delays = dict(delays if delays is not None else
                           {"get_order": 0.12, "get_shipping_status": 0.18,
                            "request_refund": 0.15, "open_ticket": 0.1})

    def _wait(self, what: str) -> None:
        delay = self.delays.get(what, 0.0)
        if delay > 0:
            time.sleep(delay)

    def get_order(self, order_id: str, *, customer_id: str | None = None) -> dict[str, Any]:
        self._wait("get_order")
        return super().get_order(order_id, customer_id=customer_id)

    def get_shipping_status(self, order_id: str, *, customer_id: str | None = None,
                            max_events: int = 10) -> dict[str, Any]:
        self._wait("get_shipping_status")
        return super().get_shipping_status(order_id, customer_id=customer_id,
                                           max_events=max_events)

    def request_refund(self, order_id: str, amount: Any, reason: str, *,
                       customer_id: str | None = None) -> dict[str, Any]:
        self._wait("request_refund")
        return super().request_refund(order_id, amount, reason, customer_id=customer_id)

    def open_ticket(self, category: str, description: str, order_id: str | None = None, *,
                    customer_id: str | None = None) -> str:
        self._wait("open_ticket")
        return super().open_ticket(category, description, order_id, customer_id=customer_id)


class RemoteKnowledgeBase(KnowledgeBase):
    """A `KnowledgeBase` whose searches take `delay` seconds, like a search service would."""

    def __init__(self, entries: Iterable[FaqEntry], *, delay: float = 0.08) -> None:
        super().__init__(entries)
        self.delay = delay

    def search(self, query: str, top_k: int = 3, *, min_ratio: float = 0.0) -> list[FaqHit]:
        if self.delay > 0:
            time.sleep(self.delay)
        return super().search(query, top_k, min_ratio=min_ratio)


def make_deps(orders_db: str | Path, *, customer_id: str | None = DEMO_CUSTOMER,
              latency: bool = True) -> tuple[ShopDeps, bool]:
    """The bot's deps on `orders_db`, seeding the demo orders into an empty file.

    Returns the deps and whether the orders were created just now. `latency=False` drops
    the simulated network delays (for tests and the web-service example).
    """
    store: OrderStore = RemoteOrderStore(orders_db) if latency else OrderStore(orders_db)
    created = store.seed_demo_data()
    entries = KnowledgeBase.from_paths(KNOWLEDGE_DIR).entries
    knowledge: KnowledgeBase = (RemoteKnowledgeBase(entries) if latency
                                else KnowledgeBase(entries))
    deps = ShopDeps(store, knowledge, customer_id=customer_id, handoff_queues=HANDOFF_QUEUES)
    return deps, created


def chat_deps() -> ShopDeps:
    """Deps for trying the shop tools in `kimi-agent chat`, on the demo's order file:

        kimi-agent chat --tools kimi_agent_tools --deps kimi_agent_tools.demo:chat_deps
    """
    from kimi_agent.cli.terminal import user_data_dir

    return make_deps(user_data_dir() / "demo.db", latency=False)[0]


REFUNDS_INSTRUCTIONS = """\
你是「小象优选」网店的退款专员，接手前台客服小象转来的退款问题。

工作方式：
1. 先用 get_order 确认商品和可退金额，再调用 request_refund；退款需要人工审批，审批结果出来之前\
不要告诉顾客“已经退了”。
2. 顾客投诉或要求人工时，调用 handoff_to_human。
3. 与退款无关的问题（物流、政策等），用 transfer_to_shop 交回前台客服。
4. 语气亲切、简洁，使用简体中文；金额写成“¥89.00”的形式。
"""
"""The refunds agent's system prompt (stable, like the shop's)."""


def build_agent(client: GatewayClient | None = None, *, model: str = "kimi-k2-6",
                fallback: str | None = "kimi-k2-5", hooks: Sequence[RunHooks] = ()
                ) -> Agent[str]:
    """The shop's front-desk agent (`shop`), which hands refunds to a refunds agent
    (`refunds`) that hands other questions back. One pair serves every customer: all
    per-conversation state — including which agent holds the conversation — lives in the
    session and the deps passed to each run. The customer's messages pass a PII guardrail
    first (phone, ID-card and bank-card numbers are masked before the model or the session
    sees them). `hooks` observe the runs (e.g. a `kimi_agent.tracing.TraceSummary` for
    `kimi-agent demo --trace`)."""
    pii = [PiiGuardrail()]
    refunds = Agent(model, fallback, instructions=REFUNDS_INSTRUCTIONS, name="refunds",
                    description="退款专员：核实订单并提交退款申请（需人工审批）。Handles refunds.",
                    tools=[get_order, request_refund, handoff_to_human], client=client,
                    tool_timeout=20.0, hooks=hooks, input_guardrails=pii)
    shop = Agent(model, fallback, instructions=INSTRUCTIONS, name="shop",
                 description="前台客服小象：订单、物流、政策问题。Front desk.",
                 tools=[t for t in CUSTOMER_SERVICE_TOOLS if t is not request_refund],
                 client=client, tool_timeout=20.0, hooks=hooks, handoffs=[refunds],
                 input_guardrails=pii)
    refunds.add_handoff(shop)
    return shop
