"""How a streamed run hands its events to the caller (`EventChannel`): in order, nothing
lost when the consumer is slower than the run, and an iteration after the block has ended
finishes at once instead of waiting for a run that was cancelled."""

from __future__ import annotations

import anyio
import pytest

from kimi_agent import Agent, MemorySession, tool
from kimi_agent.agent._channel import EventChannel
from kimi_agent.events import RunFinished, RunStarted, TextDelta
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio


@tool
async def get_weather(city: str) -> str:
    """查询城市天气。

    Args:
        city: 城市名称。
    """
    return f"{city}：晴，25°C"


def responder(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="上海今天晴，气温25度，适合出门。")
    return Reply(text="", tool_calls=[("get_weather", {"city": "上海"})])


async def test_a_slow_consumer_gets_every_event_in_order() -> None:
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_weather], client=client)
        seen = []
        async with agent.stream("上海天气怎么样？", session=MemorySession()) as run:
            async for event in run:
                await anyio.sleep(0.01)      # the run gets ahead: events wait in the buffer
                seen.append(event)
    assert isinstance(seen[0], RunStarted) and isinstance(seen[-1], RunFinished)
    text = "".join(e.text for e in seen if isinstance(e, TextDelta))
    assert text == "上海今天晴，气温25度，适合出门。" == run.result.output


async def test_iterating_after_leaving_early_ends_at_once() -> None:
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_weather], client=client)
        async with agent.stream("上海天气怎么样？") as run:
            first = await run.__anext__()
        assert isinstance(first, RunStarted)
        with anyio.fail_after(10):           # a guard against a hang, not a timing check
            rest = [event async for event in run]
    assert rest == []


async def test_the_channel_itself() -> None:
    channel: EventChannel[str] = EventChannel()
    channel.send("一")
    channel.send("二")

    async def later() -> None:
        await anyio.sleep(0.01)
        channel.send("三")
        channel.close()

    async with anyio.create_task_group() as group:
        group.start_soon(later)
        got = [await channel.receive() for _ in range(3)]
    assert got == ["一", "二", "三"]
    with pytest.raises(anyio.EndOfStream):
        await channel.receive()
    with pytest.raises(anyio.ClosedResourceError):
        channel.send("四")
    channel.discard()
    channel.send("五")                       # the consumer has gone: dropped, no error
