"""The run's contract under faults and concurrency (issue 13): typed errors leave every
public call as themselves, approved calls run at most once, replies that cannot be echoed
back are never stored, one run per conversation, a whole-run deadline. After each fault the
session must still be accepted by the strict simulator on the next run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_agent import (
    Agent,
    EmptyAnswerError,
    InvalidToolCallIdsError,
    KimiAgentError,
    MemorySession,
    ModelFailedError,
    RunContext,
    RunTimeoutError,
    SQLiteSession,
    tool,
)
from kimi_agent.errors import ApprovalError, ConcurrentRunError
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest, ToolCallSpec
from kimi_agent.wire import AssistantMessage, ToolMessage, UserMessage
from tests.simkit import Timeline, sim_client

pytestmark = pytest.mark.anyio

REFUNDS: list[str] = []
REFUND_STARTED = threading.Event()


@tool(requires_approval=True, timeout=10.0)
def refund(ctx: RunContext[Any], order_id: str, amount: float) -> str:
    """为订单退款（需要人工审批）。

    Args:
        order_id: 订单号。
        amount: 金额（元）。
    """
    REFUND_STARTED.set()
    time.sleep(0.5)
    REFUNDS.append(order_id)
    return f"已退款 {amount} 元"


@tool
def get_order(order_id: str) -> dict[str, str]:
    """查询订单。

    Args:
        order_id: 订单号。
    """
    return {"订单": order_id, "状态": "已发货"}


def shop(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="好的，已为您处理。")
    if "退款" in request.last_user_text:
        return Reply(reasoning="退款需审批", tool_calls=[
            ("refund", {"order_id": "A1024", "amount": 39.8})])
    return Reply(text=f"收到：{request.last_user_text}")


async def test_a_failing_stream_raises_the_typed_error_itself() -> None:
    sim = GatewaySimulator(responder=shop)
    sim.inject(None, status=401, always=True)
    async with sim_client(sim) as client:
        agent = Agent(client=client)
        with pytest.raises(KimiAgentError) as caught:
            async with agent.stream("你好") as run:
                async for _ in run:
                    pass
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert isinstance(caught.value, ModelFailedError)


async def test_a_failing_resume_stream_raises_the_typed_error_itself() -> None:
    sim = GatewaySimulator(responder=shop)
    async with sim_client(sim) as client:
        agent = Agent(tools=[refund], client=client)
        with pytest.raises(ApprovalError):
            async with agent.resume_stream(MemorySession(), approved=["x"]) as run:
                async for _ in run:
                    pass


async def test_cancelling_the_resume_of_an_approved_refund_never_refunds_twice(
        tmp_path: Path) -> None:
    REFUNDS.clear()
    REFUND_STARTED.clear()
    sim = GatewaySimulator(responder=shop)
    async with sim_client(sim) as client, SQLiteSession("顾客-9", tmp_path / "s.db") as session:
        agent = Agent(tools=[refund], client=client)
        first = await agent.run("订单 A1024 请退款", session=session)
        call_id = first.pending_approvals[0].call_id
        async with anyio.create_task_group() as group:
            async def resume() -> None:
                await agent.resume(session, approved=[call_id])
            group.start_soon(resume)
            await anyio.to_thread.run_sync(REFUND_STARTED.wait, 5)
            group.cancel_scope.cancel()           # Ctrl-C / the client went away
        assert REFUNDS == ["A1024"]               # the work landed once ...
        assert await agent.pending_approvals(session) == []   # ... and is not pending again
        with pytest.raises(ApprovalError):
            await agent.resume(session, approved=[call_id])
        history = await session.get_items()
        assert any(isinstance(m, ToolMessage) and m.tool_call_id == call_id
                   and "已退款" in m.content for m in history)
        after = await agent.run("谢谢", session=session)   # the strict simulator accepts it
    assert after.output == "收到：谢谢"
    assert REFUNDS == ["A1024"]


async def test_an_approved_call_whose_result_was_lost_is_not_offered_again(
        tmp_path: Path) -> None:
    """A process that died between recording the approval and committing the result: the
    call's outcome is unknown, so the next run tells the model so instead of asking again."""
    sim = GatewaySimulator(responder=shop)
    async with sim_client(sim) as client, SQLiteSession("顾客-10", tmp_path / "s.db") as session:
        agent = Agent(tools=[refund], client=client)
        first = await agent.run("订单 A1024 请退款", session=session)
        call_id = first.pending_approvals[0].call_id
        await session.set_state("kimi_agent.approved_calls", [call_id])  # as a crash leaves it
        assert await agent.pending_approvals(session) == []
        result = await agent.run("办好了吗？", session=session)
        assert result.status == "completed"
        answered = [m for m in await session.get_items()
                    if isinstance(m, ToolMessage) and m.tool_call_id == call_id]
        assert len(answered) == 1 and "结果未知" in answered[0].content
        assert await session.get_state("kimi_agent.approved_calls") is None


@pytest.mark.parametrize("ids", [["dup", "dup"], ["", "x"]])
async def test_tool_call_ids_that_cannot_be_echoed_back_are_asked_again(ids: list[str]) -> None:
    replies = 0

    def responder(request: SimRequest) -> Reply:
        nonlocal replies
        replies += 1
        if replies == 1:
            return Reply(reasoning="查两个", tool_calls=[
                ToolCallSpec("get_order", {"order_id": "A1"}, id=ids[0]),
                ToolCallSpec("get_order", {"order_id": "A2"}, id=ids[1])])
        return shop(request)

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_order], client=client)
        session = MemorySession()
        result = await agent.run("查订单", session=session)
    assert result.output == "收到：查订单" and replies == 2
    assert all(not (isinstance(m, AssistantMessage) and m.tool_calls)
               for m in await session.get_items())


async def test_tool_call_ids_broken_twice_end_the_run_with_a_typed_error() -> None:
    def responder(request: SimRequest) -> Reply:
        return Reply(reasoning="x", tool_calls=[
            ToolCallSpec("get_order", {"order_id": "A1"}, id="same"),
            ToolCallSpec("get_order", {"order_id": "A2"}, id="same")])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_order], client=client)
        session = MemorySession()
        with pytest.raises(InvalidToolCallIdsError):
            await agent.run("查订单", session=session)
        assert [type(m) for m in await session.get_items()] == [UserMessage]


async def test_a_think_only_reply_is_asked_again_and_never_stored() -> None:
    replies = 0

    def responder(request: SimRequest) -> Reply:
        nonlocal replies
        replies += 1
        return Reply(reasoning="让我想想……") if replies == 1 else Reply(text="您好！")

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(client=client)
        session = MemorySession()
        result = await agent.run("你好", session=session)
        assert result.output == "您好！"
        stored = [m for m in await session.get_items() if isinstance(m, AssistantMessage)]
        assert [m.content for m in stored] == ["您好！"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_two_empty_replies_end_with_a_typed_error(streamed: bool) -> None:
    sim = GatewaySimulator(responder=lambda request: Reply(reasoning="……"))
    async with sim_client(sim) as client:
        agent = Agent(client=client)
        session = MemorySession()
        with pytest.raises(EmptyAnswerError):
            if streamed:
                async with agent.stream("你好", session=session) as run:
                    async for _ in run:
                        pass
            else:
                await agent.run("你好", session=session)
        assert [type(m) for m in await session.get_items()] == [UserMessage]
        sim.responder = shop
        assert (await agent.run("再试一次", session=session)).output == "收到：再试一次"


async def test_runs_on_one_session_are_serialised_and_the_history_stays_valid(
        tmp_path: Path) -> None:
    timeline = Timeline()

    @tool
    async def lookup(order_id: str) -> str:
        """慢查询。

        Args:
            order_id: 订单号。
        """
        started = timeline.start(order_id)
        await anyio.sleep(0.2)
        timeline.end(order_id, started)
        return f"{order_id} 已发货"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="查好了")
        order = request.last_user_text[-5:]
        return Reply(reasoning="查", tool_calls=[("lookup", {"order_id": order})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client, SQLiteSession("同一位顾客", tmp_path / "s.db") as one, \
            SQLiteSession("同一位顾客", tmp_path / "s.db") as other:
        agent = Agent(tools=[lookup], client=client)
        async def run(prompt: str, session: SQLiteSession) -> None:
            await agent.run(prompt, session=session)

        async with anyio.create_task_group() as group:
            group.start_soon(run, "查订单 A1001", one)
            group.start_soon(run, "查订单 A1002", other)
        assert timeline.none_overlap()
        await agent.run("查订单 A1003", session=one)   # the strict simulator accepts it all
        history = await one.get_items()
    users = [i for i, m in enumerate(history) if isinstance(m, UserMessage)]
    assert len(users) == 3
    for start, end in zip(users, [*users[1:], len(history)], strict=True):
        turn = history[start:end]
        assert isinstance(turn[1], AssistantMessage) and isinstance(turn[2], ToolMessage)


async def test_a_foreign_write_during_a_run_stops_it_before_it_commits(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    @tool
    async def meddle() -> str:
        """在运行中写入会话（模拟另一个进程）。"""
        import sqlite3
        with sqlite3.connect(db) as raw:
            seq = raw.execute("SELECT MAX(seq) FROM messages").fetchone()[0] + 1
            raw.execute("INSERT INTO messages (session_id, seq, role, json, created_at) "
                        "VALUES ('顾客', ?, 'user', ?, 'now')",
                        (seq, '{"role": "user", "content": "另一个进程的消息"}'))
        return "done"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="完成")
        return Reply(reasoning="x", tool_calls=[("meddle", {})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client, SQLiteSession("顾客", db) as session:
        agent = Agent(tools=[meddle], client=client)
        with pytest.raises(ConcurrentRunError):
            await agent.run("开始", session=session)
        sim.responder = shop
        result = await agent.run("继续", session=session)   # the history is still valid
    assert result.output == "收到：继续"


async def test_an_unanswered_call_in_the_middle_of_the_history_is_repaired_on_the_wire(
        ) -> None:
    session = MemorySession("旧会话", [
        UserMessage(content="查 A1"),
        AssistantMessage(content="", reasoning_content="查", tool_calls=[
            {"id": "get_order:0", "type": "function",
             "function": {"name": "get_order", "arguments": '{"order_id": "A1"}'}}]),
        UserMessage(content="还在吗？"),
        AssistantMessage(content="在的。"),
    ])
    sim = GatewaySimulator(responder=shop)
    async with sim_client(sim) as client:
        result = await Agent(tools=[get_order], client=client).run("你好", session=session)
    assert result.output == "收到：你好"
    sent = sim.last_request.body["messages"]
    assert sent[2] == {"role": "tool", "tool_call_id": "get_order:0",
                       "content": sent[2]["content"]}
    assert "中断" in sent[2]["content"]


async def test_a_run_that_outlives_its_deadline_raises_run_timeout() -> None:
    @tool(timeout=None)
    async def stuck() -> str:
        """永远不返回的工具。"""
        await anyio.sleep(3600)
        return "never"

    def responder(request: SimRequest) -> Reply:
        return Reply(reasoning="x", tool_calls=[("stuck", {})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[stuck], client=client, run_timeout=0.5)
        session = MemorySession()
        with pytest.raises(RunTimeoutError):
            await agent.run("开始", session=session)
    assert [type(m) for m in await session.get_items()] == [UserMessage]
