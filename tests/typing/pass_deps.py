"""Must type-check under `mypy --strict`: typed deps used correctly."""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

from kimi_agent import Agent, RunContext, Tool, ToolRegistry, tool
from tests.typing._shop import HasOrders, Shop, Weather, clock, forecast, order_status, shop_name

# @tool infers the deps from the first parameter; options keep it; no context: Any.
assert_type(order_status, Tool[HasOrders])
assert_type(shop_name, Tool[Shop])
assert_type(clock, Tool[Any])


@tool
def untyped(ctx: RunContext, text: str) -> str:  # type: ignore[type-arg]
    """A bare RunContext: Any deps."""
    return text


assert_type(untyped, Tool[Any])

# deps_type fixes the agent's deps; a protocol tool and a tool without context fit.
shop_agent = Agent(deps_type=Shop, tools=[order_status, shop_name, clock, untyped])
assert_type(shop_agent, Agent[Shop, str])
registry: ToolRegistry[Shop] = ToolRegistry([order_status, shop_name])
assert_type(Agent(deps_type=Shop, tools=registry), Agent[Shop, str])


class Answer(BaseModel):
    text: str


structured = Agent(deps_type=Shop, tools=[shop_name], output_type=Answer)
assert_type(structured, Agent[Shop, Answer])


def plain(city: str) -> str:
    """A plain function (not checked for deps)."""
    return city


weather: Agent[Weather, str] = Agent(tools=[forecast, plain])
# Without deps_type or an annotation: Any deps, as in untyped code.
assert_type(Agent(tools=[plain]), Agent[Any, str])
assert_type(Agent(), Agent[Any, str])


async def runs() -> None:
    result = await shop_agent.run("订单A1024到哪了？", deps=Shop())
    assert_type(result.output, str)
    assert_type((await structured.run("你好", deps=Shop())).output, Answer)
    shop_agent.run_sync("店铺叫什么？", deps=Shop())
    async with weather.stream("北京天气？", deps=Weather()) as run:
        async for _ in run:
            pass
    await Agent().run("随便", deps={"anything": 1})
    helper = shop_agent.as_tool("shop_helper", "回答店铺问题")
    assert_type(helper, Tool[Shop])


# One typed tool: mypy infers the agent's deps from it.
assert_type(Agent(tools=[shop_name]), Agent[Shop, str])

# @registry.tool types like @tool.
shop_tools: ToolRegistry[Shop] = ToolRegistry()


@shop_tools.tool(sequential=True)
def stock(ctx: RunContext[HasOrders], sku: str) -> int:
    """库存数量。"""
    return len(ctx.deps.orders)


assert_type(stock, Tool[HasOrders])
assert_type(shop_tools.get("stock"), Tool[Shop])
