"""Hand-offs between agents, agents as tools and per-run instructions (issue 20), on the
gateway simulator: triage passes refunds to the refunds agent, whose refund waits for
approval and is resumed in another process; the conversation stays with the refunds agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_agent import Agent, MemorySession, RunContext, SQLiteSession, tool
from kimi_agent.agent import AgentHandoff, remove_tool_history
from kimi_agent.events import AgentToolEvent, HandoffActivated
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.shop_agents import build, model
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


async def test_triage_hands_refunds_over_and_the_approval_resumes_in_another_process(
        tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    sim = GatewaySimulator(responder=model)
    async with sim_client(sim) as client, SQLiteSession("顾客-5", db) as session:
        triage, _, _ = build(client)
        assert "transfer_to_refunds" in triage.registry and "transfer_to_billing" in \
            triage.registry
        seen = []
        async with triage.stream("保温杯漏水，我要退款", session=session) as run:
            async for event in run:
                seen.append(event)
        result = run.result
        assert result.status == "pending_approval"
        assert [(e.source, e.target) for e in seen if isinstance(e, HandoffActivated)] == [
            ("triage", "refunds")]
        call_id = result.pending_approvals[0].call_id
        assert [p.tool for p in await triage.pending_approvals(session)] == ["request_refund"]
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [sys.executable, "-m", "tests.shop_agents", "resume", "--db", str(db),
                 "--session", "顾客-5", "--url", str(client.base_url), "--key", sim.api_key,
                 "--approve", call_id], cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr.decode()
        resumed = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert resumed == {"output": "退款已提交，单号 RF000001。", "status": "completed",
                           "refunds": ["A1025"]}
        after = await triage.run("好的，谢谢", session=session)
    assert after.output == "退款专员收到：好的，谢谢"          # still held by refunds
    assert sim.last_request.messages[0]["content"] == "你是退款专员。"


async def test_an_input_filter_decides_what_history_the_target_sees() -> None:
    sim = GatewaySimulator(responder=model)
    async with sim_client(sim) as client:
        billing = Agent(name="billing", instructions="你是账单专员。", client=client,
                        tools=build(client)[1].registry)
        triage = Agent(name="triage", instructions="你是分诊客服，把问题转给合适的同事。",
                       client=client, handoffs=[AgentHandoff(billing,
                                                             input_filter=remove_tool_history)])
        result = await triage.run("发票开了吗？", session=MemorySession())
    assert result.output == "A1024 的发票已开具"
    first_billing = next(r for r in sim.requests if r.messages[0]["content"] == "你是账单专员。")
    assert all(m["role"] != "tool" for m in first_billing.messages)


async def test_an_agent_as_a_tool_counts_its_usage_once_and_nests_its_events() -> None:
    def responder(request: SimRequest) -> Reply:
        if request.messages[0]["content"].startswith("你是翻译"):
            return Reply(text="Where is my order?")
        if request.tool_results:
            return Reply(text=f"翻译结果：{request.tool_results[0].content}")
        return Reply(reasoning="请翻译助手",
                     tool_calls=[("translator", {"request": "我的订单在哪"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        translator = Agent(name="translator", instructions="你是翻译，把中文译成英文。",
                           client=client, description="把中文翻译成英文。")
        main = Agent(instructions="你是客服。", tools=[translator.as_tool()], client=client)
        async with main.stream("帮我翻译：我的订单在哪") as run:
            events = [event async for event in run]
        result = run.result
    assert result.output == "翻译结果：Where is my order?"
    assert result.usage.requests == 3 == len(sim.requests)   # 2 of its own + 1 nested
    nested = [e for e in events if isinstance(e, AgentToolEvent)]
    assert nested and all(e.agent == "translator" for e in nested)


async def test_dynamic_instructions_change_per_customer_and_stay_stable_within_a_run() -> None:
    @tool
    def lookup(order_id: str) -> str:
        """查订单。

        Args:
            order_id: 订单号。
        """
        return "已发货"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="已发货")
        return Reply(reasoning="查", tool_calls=[("lookup", {"order_id": "A1"})])

    calls = 0

    def instructions(ctx: RunContext[dict[str, str]]) -> str:
        nonlocal calls
        calls += 1
        return f"你是客服。顾客：{ctx.deps['name']}（{ctx.deps['tier']}会员）。"

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(instructions=instructions, tools=[lookup], client=client)
        await agent.run("订单呢？", deps={"name": "张伟", "tier": "金卡"})
        await agent.run("订单呢？", deps={"name": "李娜", "tier": "普通"})
    systems = [r.messages[0]["content"] for r in sim.requests]
    assert systems[0] == systems[1] == "你是客服。顾客：张伟（金卡会员）。"
    assert systems[2] == systems[3] == "你是客服。顾客：李娜（普通会员）。"
    assert calls == 2                                        # once per run, not per step


async def test_hand_off_to_a_person_works_from_a_target_agent() -> None:
    @tool
    def handoff_to_human(ctx: RunContext[Any], reason: str) -> str:
        """转人工。

        Args:
            reason: 原因。
        """
        ctx.handoff(reason)
        return "已转人工"

    def responder(request: SimRequest) -> Reply:
        system = request.messages[0]["content"]
        if "分诊" in system:
            return Reply(reasoning="转", tool_calls=[("transfer_to_complaints", {})])
        if request.tool_results and request.tool_results[-1].name == "handoff_to_human":
            return Reply(text="稍后人工客服联系您")
        return Reply(reasoning="转人工", tool_calls=[("handoff_to_human",
                                                    {"reason": "complaint"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        complaints = Agent(name="complaints", instructions="你处理投诉。",
                           tools=[handoff_to_human], client=client)
        triage = Agent(name="triage", instructions="你是分诊客服。", handoffs=[complaints],
                       client=client)
        result = await triage.run("我要投诉！", session=MemorySession())
    assert result.status == "handoff" and result.handoff is not None
    assert result.handoff.reason == "complaint"
