"""Run hooks: tracing and durable execution wrap a run, its model calls and its tool
executions without the loop knowing them. A hook sees each box once, in order, and may
answer in its place (a replayed checkpoint); without hooks nothing is wrapped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from kimi_agent import Agent, GatewayClient, MemorySession, RunContext, RunHooks, tool
from kimi_agent.agent import ModelCall, ModelReply, RunInfo, RunResult, ToolExecution
from kimi_agent.errors import ToolRetriesExceededError
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest

pytestmark = pytest.mark.anyio

CALLS: list[str] = []


@tool
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号。
    """
    CALLS.append(order_id)
    await anyio.sleep(0.01)
    return {"订单": order_id, "状态": "已发货"}


@tool(requires_approval=True)
def refund(ctx: RunContext[Any], order_id: str) -> str:
    """退款（需要审批）。

    Args:
        order_id: 订单号。
    """
    raise RuntimeError("退款系统维护中")


def shop(request: SimRequest) -> Reply:
    if "退款" in request.last_user_text:
        if not request.tool_results:
            return Reply(reasoning="要退款", tool_calls=[("refund", {"order_id": "A1"})])
        return Reply(text="退款失败，请稍后再试。")
    if not request.tool_results:
        return Reply(reasoning="两个订单一起查", tool_calls=[
            ("get_order", {"order_id": "A1"}), ("get_order", {"order_id": "A2"})])
    return Reply(text="两个订单都已发货。")


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    async def on_run(self, info: RunInfo,
                     proceed: Callable[[], Awaitable[RunResult[Any]]]) -> RunResult[Any]:
        self.seen.append(("run", info))
        result = await proceed()
        self.seen.append(("run-end", result.status))
        return result

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        completion, profile, reason = await proceed()
        self.seen.append(("model", (call.step, profile.name)))
        return completion, profile, reason

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        self.seen.append(("tool", (execution.tool.name, execution.arguments["order_id"])))
        return await proceed()


class Replay(RunHooks):
    """Answers every tool execution from a store instead of running it."""

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        return {"订单": execution.arguments["order_id"], "状态": "（回放）已签收"}


async def test_hooks_see_the_run_each_model_call_and_each_tool() -> None:
    recorder = Recorder()
    sim = GatewaySimulator(responder=shop)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        agent = Agent(tools=[get_order], client=client, hooks=[recorder], name="客服")
        session = MemorySession("顾客-1")
        result = await agent.run("帮我查 A1 和 A2 两个订单", session=session)
    assert result.output == "两个订单都已发货。"
    kinds = [kind for kind, _ in recorder.seen]
    assert kinds == ["run", "model", "tool", "tool", "model", "run-end"]
    run_info = recorder.seen[0][1]
    assert (run_info.agent_name, run_info.session_id, run_info.kind) == ("客服", "顾客-1", "run")
    assert [v for k, v in recorder.seen if k == "model"] == [(1, "kimi-k2-6"), (2, "kimi-k2-6")]
    assert sorted(v for k, v in recorder.seen if k == "tool") == [
        ("get_order", "A1"), ("get_order", "A2")]


async def test_a_hook_can_answer_for_a_tool_without_running_it() -> None:
    CALLS.clear()
    sim = GatewaySimulator(responder=shop)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        agent = Agent(tools=[get_order], client=client, hooks=[Recorder(), Replay()])
        result = await agent.run("帮我查 A1 和 A2 两个订单")
    assert CALLS == []
    assert [r.result for r in result.steps[0].tool_calls] == [
        '{"订单":"A1","状态":"（回放）已签收"}', '{"订单":"A2","状态":"（回放）已签收"}']


async def test_a_resumed_step_counts_tool_failures_like_a_fresh_one() -> None:
    """The resumed step runs through the same tool-step path as a fresh one: a failing
    approved call counts towards `tool_retries` (it used not to)."""
    sim = GatewaySimulator(responder=shop)
    recorder = Recorder()
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        agent = Agent(tools=[refund], client=client, tool_retries=0, hooks=[recorder])
        session = MemorySession()
        first = await agent.run("我要退款", session=session)
        assert first.status == "pending_approval"
        with pytest.raises(ToolRetriesExceededError):
            await agent.resume(session, approved=[first.pending_approvals[0].call_id])
    assert any(kind == "run" and info.kind == "resume" for kind, info in recorder.seen)
