"""The ready-made tools inside a real run: Agent + executor + the gateway simulator on loopback.

Checks what only shows up end to end: the schemas pass the simulator's strict dialect check,
the results reach the model as JSON with Chinese intact, errors reach it as readable text,
the refund waits for approval, and the hand-off ends the run with a routable status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kimi_agent_tools import (
    CUSTOMER_SERVICE_TOOLS,
    FaqEntry,
    KnowledgeBase,
    OrderStore,
    ShopDeps,
)

from kimi_agent import Agent, GatewayClient, MemorySession
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

INSTRUCTIONS = "你是一家网店的客服助手，回答要简洁、礼貌。"


@pytest.fixture
def deps(tmp_path: Path) -> ShopDeps:
    store = OrderStore(tmp_path / "shop.db")
    store.seed_demo_data()
    kb = KnowledgeBase([
        FaqEntry("退货运费由谁承担？", "质量问题由商家承担运费；七天无理由退货由买家承担。"),
        FaqEntry("下单后多久发货？", "现货 48 小时内发货。"),
    ])
    return ShopDeps(store, kb, customer_id="u1001")


def agent_for(client: GatewayClient) -> Agent[ShopDeps, str]:
    return Agent(instructions=INSTRUCTIONS, tools=CUSTOMER_SERVICE_TOOLS, client=client)


async def test_three_tools_at_once_with_chinese_results(deps: ShopDeps) -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="｜".join(r.content for r in request.tool_results))
        return Reply(reasoning="查订单、物流和退货政策", tool_calls=[
            ("get_order", {"order_id": "A1024"}),
            ("get_shipping_status", {"order_id": "A1024"}),
            ("faq_search", {"query": "退货运费谁出", "top_k": 1}),
        ])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        result = await agent_for(client).run("A1024 到哪了？退货运费谁出？", deps=deps)
    assert result.status == "completed"
    calls = result.steps[0].tool_calls
    assert [c.name for c in calls] == ["get_order", "get_shipping_status", "faq_search"]
    assert all(c.status == "ok" for c in calls)
    order, shipping, faq = (json.loads(c.result) for c in calls)
    assert order["items"][0]["name"] == "无线蓝牙耳机"
    assert shipping["carrier"] == "顺丰速运"
    assert faq["results"][0]["question"] == "退货运费由谁承担？"
    assert "顺丰速运" in calls[1].result  # ensure_ascii=False: Chinese, not \\u escapes
    sent = sim.requests[0].tools
    assert [t["function"]["name"] for t in sent] == [t.name for t in CUSTOMER_SERVICE_TOOLS]


async def test_errors_reach_the_model_as_readable_text(deps: ShopDeps) -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="抱歉，" + request.tool_results[0].content)
        return Reply(reasoning="查订单", tool_calls=[
            ("get_order", {"order_id": "A9999"}),
            ("calculate", {"expression": "__import__('os')"}),
        ])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        result = await agent_for(client).run("帮我查 A9999", deps=deps)
    missing, bad = result.steps[0].tool_calls
    assert missing.status == "error" and "未找到订单 A9999" in missing.result
    assert bad.status == "error" and "不支持的字符" in bad.result


async def test_refund_waits_for_approval_then_runs(deps: ShopDeps) -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="退款结果：" + request.tool_results[0].content)
        return Reply(reasoning="客户要求退保护套的钱",
                     tool_calls=[("request_refund",
                                  {"order_id": "A1024", "amount": 29.9, "reason": "保护套不要了"})])

    sim = GatewaySimulator(responder=responder)
    session = MemorySession("customer-u1001")
    async with sim_client(sim) as client:
        agent = agent_for(client)
        paused = await agent.run("保护套退了吧", deps=deps, session=session)
        assert paused.status == "pending_approval"
        [pending] = paused.pending_approvals
        assert pending.tool == "request_refund"
        assert pending.arguments["amount"] == 29.9
        assert deps.order_store.get_order("A1024")["refunded"] == "0.00"  # not yet
        done = await agent.resume(session, approved=[pending.call_id], deps=deps)
    assert done.status == "completed"
    assert deps.order_store.get_order("A1024")["refunded"] == "29.90"
    assert "已提交" in str(done.output)


async def test_handoff_ends_the_run_with_a_routable_status(deps: ShopDeps) -> None:
    def responder(request: SimRequest) -> Reply:
        return Reply(reasoning="客户投诉，需要人工",
                     tool_calls=[("handoff_to_human",
                                  {"reason": "complaint", "summary": "客户投诉快递员态度差"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        result = await agent_for(client).run("我要投诉你们的快递员！", deps=deps)
    assert result.status == "handoff"
    assert result.handoff is not None
    assert result.handoff.reason == "complaint"
    assert result.handoff.summary == "客户投诉快递员态度差"
    assert "已为您转接人工客服" in result.steps[0].tool_calls[0].result
