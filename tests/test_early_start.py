"""Read-only tools start while the reply is still streaming (kimi-k2-6 only): a call starts
as soon as its arguments are complete, the step takes its result, and nothing that needs
approval, runs sequentially, or is on kimi-k2-5 starts early."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kimi_agent import Agent, GatewayClient, MemorySession, RunHooks, tool
from kimi_agent.agent import ModelCall, ModelReply
from kimi_agent.agent._early import ObjectEnd
from kimi_agent.events import ToolCallFinished, ToolCallStarted
from kimi_agent.testing import GatewaySimulator, Latency, Reply, SimRequest
from tests.gatewaykit import chunk
from tests.scripted_http import Answer, ScriptedServer
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


async def events_of(agent: Agent[Any, str]) -> list[Any]:
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


STARTED: dict[str, asyncio.Event] = {}


@tool(read_only=True)
async def lookup_stock(sku: str) -> str:
    """查询库存（只读）。

    Args:
        sku: 商品编号。
    """
    STARTED.setdefault(sku, asyncio.Event()).set()
    return f"{sku} 有货"


def _call_header(index: int, call_id: str, name: str) -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": ""}}]})


def _call_arguments(index: int, fragment: str) -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})


async def test_a_call_starts_once_its_arguments_close_before_the_next_call_arrives() -> None:
    """The server holds back the second call's header (and the end of the reply) until the
    first call's tool has started: the call must start on its closing brace alone."""
    STARTED.clear()
    first = STARTED.setdefault("SKU-1", asyncio.Event())
    second = STARTED.setdefault("SKU-2", asyncio.Event())
    arguments = json.dumps({"sku": "SKU-1"}, ensure_ascii=False)
    events: list[dict[str, Any] | str] = [
        chunk({"role": "assistant", "reasoning_content": "先查两个商品的库存"}),
        _call_header(0, "lookup_stock:0", "lookup_stock"),
        _call_arguments(0, arguments[:5]),
        _call_arguments(0, arguments[5:]),
        _call_header(1, "lookup_stock:1", "lookup_stock"),          # gated on SKU-1
        _call_arguments(1, json.dumps({"sku": "SKU-2"})),
        chunk({}, "tool_calls"),                                   # gated on SKU-2
    ]
    usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    answer_events = chunk({"role": "assistant", "content": "两个商品都有货。"}, "stop",
                          usage=usage)
    server = ScriptedServer([Answer(events=events, gates={4: first, 6: second}),
                             Answer(events=[answer_events])])
    async with server.serve() as url, GatewayClient(url, "sk-test") as client:
        agent = Agent(tools=[lookup_stock], client=client)
        async with agent.stream("两个商品有货吗？") as run:
            async for _event in run:
                pass
    assert run.result.output == "两个商品都有货。"
    assert server.gates_timed_out == []
    results = [m for m in server.requests[1].json()["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in results] == ["SKU-1 有货", "SKU-2 有货"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.data())
def test_object_end_closes_exactly_at_the_last_brace(value: dict[str, Any],
                                                      data: st.DataObject) -> None:
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    scanner = ObjectEnd()
    closed_at = [scanner.feed(piece) for piece in pieces if piece]
    assert closed_at[-1] is True
    assert not any(closed_at[:-1])
