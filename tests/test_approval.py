"""Human approval and hand-off, with the state kept in a SQLite session.

A `requires_approval` tool is not run when the model calls it: the run ends with
`pending_approvals`, the call waits in the stored history, and `agent.resume(...)` decides it,
in this process or another one. A tool that calls `ctx.handoff(...)` ends the run with a
status the calling service routes on.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kimi_agent import Agent, GatewayClient
from kimi_agent.errors import ApprovalError
from kimi_agent.sessions._sqlite import SQLiteSession
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.wire import AssistantMessage, ToolMessage, UserMessage
from tests.session_worker import agent_for, all_accepted, responder, run_worker

pytestmark = pytest.mark.anyio

REFUND_PROMPT = "订单 A1024 的耳机保护套不要了，请帮我退款。"


@dataclass
class Served:
    sim: GatewaySimulator
    url: str
    client: GatewayClient
    agent: Agent[Any, str]
    session: SQLiteSession
    db: Path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    db = tmp_path / "approvals.db"
    sim = GatewaySimulator(responder=both_or_one)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client, \
            SQLiteSession("客户-7", db) as session:
        yield Served(sim, url, client, agent_for(client), session, db)


def both_or_one(request: SimRequest) -> Reply:
    """`responder`, plus a reply that asks for a refund and an order look-up at once."""
    if "一起" in request.last_user_text and not request.tool_results:
        return Reply(reasoning="退款要审核，订单可以直接查。", tool_calls=[
            ("refund", {"order_id": "A1024", "amount": 39.8}),
            ("get_order", {"order_id": "A1024"})])
    return responder(request)


async def test_a_refund_waits_for_approval_and_does_not_run(served: Served) -> None:
    result = await served.agent.run(REFUND_PROMPT, session=served.session)
    assert result.status == "pending_approval"
    (pending,) = result.pending_approvals
    call_id = served.sim.requests[0].tool_call_ids[0]
    assert (pending.call_id, pending.tool) == (call_id, "refund")
    assert pending.arguments == {"order_id": "A1024", "amount": 39.8}
    assert result.steps[0].tool_calls[0].status == "pending_approval"
    stored = await served.session.get_items()
    assert [m.role for m in stored] == ["user", "assistant"], "the call waits, unanswered"
    assert len(served.sim.requests) == 1 and all_accepted(served.sim)

    with pytest.raises(ApprovalError, match="waiting for approval"):
        await served.agent.run("你好？", session=served.session)
    assert await served.session.get_items() == stored, "a refused run adds nothing"
    assert len(served.sim.requests) == 1


async def test_approval_resumed_from_another_process_runs_the_tool(
        served: Served, tmp_path: Path) -> None:
    result = await served.agent.run(REFUND_PROMPT, session=served.session)
    call_id = result.pending_approvals[0].call_id

    report = await run_worker("resume", served.db, "--url", served.url, "--key",
                              served.sim.api_key, "--session", "客户-7", "--approve", call_id,
                              logs=tmp_path / "logs")
    assert report["status"] == "completed"
    assert report["pid"] != os.getpid()
    assert report["calls"][0][:3] == [call_id, "refund", "ok"]
    assert f"退款成功：订单 A1024 退款 39.80 元（进程 {report['pid']}）" in report["output"]

    sent = served.sim.requests[-1].messages
    assert sent[-1] == {"role": "tool", "tool_call_id": call_id, "content": report["calls"][0][3]}
    assert all_accepted(served.sim)
    history = await served.session.get_items()
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    after = await served.agent.run("谢谢，退款多久到账？", session=served.session)
    assert after.status == "completed" and all_accepted(served.sim)


async def test_a_rejected_call_goes_back_as_a_refusal_the_model_explains(
        served: Served) -> None:
    result = await served.agent.run(REFUND_PROMPT, session=served.session)
    call_id = result.pending_approvals[0].call_id
    reason = "已超过七天无理由退货期限"

    resumed = await served.agent.resume(served.session, rejected={call_id: reason})
    assert resumed.status == "completed"
    (record,) = resumed.steps[0].tool_calls
    assert (record.call_id, record.status) == (call_id, "rejected")
    refusal = served.sim.requests[-1].messages[-1]
    assert refusal["role"] == "tool" and refusal["tool_call_id"] == call_id
    assert reason in refusal["content"] and "拒绝" in refusal["content"]
    assert resumed.output.startswith("很抱歉，您的退款申请未通过人工审核")
    assert reason in resumed.output
    assert all_accepted(served.sim)


async def test_resume_refuses_decisions_that_do_not_match(served: Served) -> None:
    with pytest.raises(ApprovalError, match="no calls waiting for approval"):
        await served.agent.resume(served.session, approved=["refund:0"])
    result = await served.agent.run(REFUND_PROMPT, session=served.session)
    call_id = result.pending_approvals[0].call_id
    stored = await served.session.get_items()
    for decisions in ({"approved": ["no-such-call"]},
                      {"approved": [call_id, "no-such-call"]},
                      {},
                      {"approved": [call_id], "rejected": {call_id: "不行"}}):
        with pytest.raises(ApprovalError):
            await served.agent.resume(served.session, **decisions)
    assert await served.session.get_items() == stored
    assert len(served.sim.requests) == 1


async def test_a_step_with_approved_and_ordinary_calls_resumes_into_a_valid_history(
        served: Served) -> None:
    result = await served.agent.run("订单 A1024 一起办：退款并查物流", session=served.session)
    assert [p.tool for p in result.pending_approvals] == ["refund"]
    assert [(c.name, c.status) for c in result.steps[0].tool_calls] == [
        ("refund", "pending_approval"), ("get_order", "ok")]
    refund_id = result.pending_approvals[0].call_id

    resumed = await served.agent.resume(served.session, approved=[refund_id])
    assert resumed.status == "completed" and all_accepted(served.sim)
    history = await served.session.get_items()
    call = history[1]
    assert isinstance(call, AssistantMessage) and call.tool_calls
    results = {m.tool_call_id: m.content for m in history if isinstance(m, ToolMessage)}
    assert set(results) == {c.id for c in call.tool_calls}
    assert results[refund_id].startswith("退款成功")
    sent = served.sim.requests[-1].messages
    step = next(i for i, m in enumerate(sent) if m.get("tool_calls"))
    sent_order = [m["tool_call_id"] for m in sent[step + 1:step + 3]]
    assert sent_order == [c.id for c in call.tool_calls], "results go back in call order"


async def test_hand_off_ends_the_run_with_a_routable_status(served: Served) -> None:
    result = await served.agent.run("我要投诉！快递两个星期都没到。", session=served.session)
    assert result.status == "handoff"
    assert result.handoff is not None and result.handoff.reason == "complaint"
    assert result.handoff.summary.startswith("客户投诉：我要投诉")
    assert result.handoff.tool_call_id == served.sim.requests[0].tool_call_ids[0]
    assert len(served.sim.requests) == 1, "the model is not asked again after a hand-off"
    stored = await served.session.get_items()
    assert [m.role for m in stored] == ["user", "assistant", "tool"]
    assert isinstance(stored[-1], ToolMessage) and "已转接人工客服" in stored[-1].content
    # the person who takes over (or the bot, later) continues on a valid history
    after = await served.agent.run("人工客服什么时候联系我？", session=served.session)
    assert after.status == "completed" and all_accepted(served.sim)
    assert isinstance(after.new_messages[0], UserMessage)
    assert json.dumps(served.sim.requests[-1].messages, ensure_ascii=False).count("已转接") == 1


async def test_resume_can_stream_and_pending_approvals_are_public(served: Served) -> None:
    from kimi_agent.agent._events import RunFinished, RunStarted, TextDelta, ToolCallFinished

    result = await served.agent.run(REFUND_PROMPT, session=served.session)
    pending = await served.agent.pending_approvals(served.session)
    assert pending == result.pending_approvals and pending[0].tool == "refund"
    async with served.agent.resume_stream(served.session,
                                          approved=[pending[0].call_id]) as run:
        events = [event async for event in run]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, RunStarted) for e in events) == 1
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [e.record.name for e in finished] == ["refund"] and finished[0].ok
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == run.result.output
    assert run.result.status == "completed"
    assert await served.agent.pending_approvals(served.session) == []


async def test_a_run_waiting_for_approval_has_an_empty_text_output(served: Served) -> None:
    result = await served.agent.run(REFUND_PROMPT, session=served.session)
    assert result.status == "pending_approval"
    assert result.output == ""
