"""Must NOT type-check: each line marked `# E: code` is an error of that code."""

from __future__ import annotations

from kimi_agent import Agent, MemorySession, ToolRegistry
from tests.typing._shop import Shop, Weather, forecast, order_status, shop_name

Agent(deps_type=Shop, tools=[order_status, forecast])  # E: list-item
Agent(deps_type=Shop, tools=forecast)  # E: misc
weather: Agent[Weather, str] = Agent(tools=[shop_name])  # E: list-item
registry: ToolRegistry[Shop] = ToolRegistry([forecast])  # E: list-item
registry.register(forecast)  # E: arg-type
Agent(deps_type=Weather, tools=registry)  # E: misc
shop_agent = Agent(deps_type=Shop, tools=[shop_name])


async def runs() -> None:
    await shop_agent.run("订单A1024到哪了？", deps=Weather())  # E: arg-type
    shop_agent.run_sync("店铺叫什么？", deps="深圳小店")  # E: arg-type
    await shop_agent.resume(MemorySession("s1"), deps=Weather())  # E: arg-type
    async with shop_agent.stream("你好", deps=Weather()) as run:  # E: arg-type
        print(run)
    async with shop_agent.resume_stream(MemorySession("s2"), deps=1) as again:  # E: arg-type
        print(again)
