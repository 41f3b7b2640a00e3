"""Read-only tools start while the reply is still streaming (kimi-k2-6 only): a call starts
as soon as its arguments are complete, the step takes its result, and nothing that needs
approval, runs sequentially, or is on kimi-k2-5 starts early."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from kimi_agent import Agent, MemorySession, RunHooks, tool
from kimi_agent.agent import ModelCall, ModelReply
from kimi_agent.events import ToolCallFinished, ToolCallStarted
from kimi_agent.testing import GatewaySimulator, Latency, Reply, SimRequest
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

LOG: list[tuple[str, str]] = []
STARTED_AT: dict[str, float] = {}


class ReplyDone(RunHooks):
    """Notes when each model call's whole reply had arrived."""

    def __init__(self) -> None:
        self.done: list[float] = []

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        reply = await proceed()
        self.done.append(time.monotonic())
        return reply


@tool(read_only=True)
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单（只读，可以提前开始）。

    Args:
        order_id: 订单号。
    """
    LOG.append(("start", order_id))
    STARTED_AT[order_id] = time.monotonic()
    await anyio.sleep(0.05)
    LOG.append(("end", order_id))
    return {"订单": order_id, "状态": "已发货"}


@tool
async def write_note(order_id: str) -> str:
    """写备注（有副作用，不能提前开始）。

    Args:
        order_id: 订单号。
    """
    LOG.append(("start", f"note-{order_id}"))
    return "已备注"


def responder(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="订单都已发货。")
    return Reply(reasoning="先查订单再写备注", text="", tool_calls=[
        ("get_order", {"order_id": "A1"}), ("get_order", {"order_id": "A2"}),
        ("write_note", {"order_id": "A1"})])


async def events_of(agent: Agent[str]) -> list[Any]:
    seen: list[Any] = []
    async with agent.stream("查一下 A1 和 A2", session=MemorySession()) as run:
        async for event in run:
            seen.append(event)
    assert run.result.output == "订单都已发货。"
    return seen


async def test_a_read_only_call_starts_before_the_reply_has_finished() -> None:
    LOG.clear()
    hook = ReplyDone()
    sim = GatewaySimulator(responder=responder, latency=Latency(tokens_per_second=200))
    async with sim_client(sim) as client:
        events = await events_of(Agent(tools=[get_order, write_note], client=client,
                                       hooks=[hook]))
    assert len(sim.requests) == 2
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert sorted(e.name for e in started) == ["get_order", "get_order", "write_note"]
    # both look-ups started while the first reply was still streaming; the note did not
    assert STARTED_AT["A1"] < STARTED_AT["A2"] < hook.done[0]
    assert LOG.index(("start", "note-A1")) > LOG.index(("start", "A2"))
    finished = [e.record for e in events if isinstance(e, ToolCallFinished)]
    assert len({r.call_id for r in finished}) == 3 and all(r.status == "ok" for r in finished)


async def test_nothing_starts_early_on_kimi_k2_5() -> None:
    LOG.clear()
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        events = await events_of(Agent("kimi-k2-5", None, tools=[get_order, write_note],
                                       client=client))
    assert sum(isinstance(e, ToolCallStarted | ToolCallFinished) for e in events) == 6
    assert LOG == [("start", "A1"), ("end", "A1"), ("start", "A2"), ("end", "A2"),
                   ("start", "note-A1")]
