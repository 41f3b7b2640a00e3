"""`ToolRegistry`: registration, lookup, duplicate names, and the stable `tools` array."""

from __future__ import annotations

import json

import pytest

from kimi_agent import RunContext, Tool, ToolRegistry, tool
from kimi_agent.errors import DuplicateToolError, UnknownToolError


@tool
def get_order(order_id: str) -> str:
    """查询订单状态。

    Args:
        order_id: 订单号，例如 "A1024"。
    """
    return order_id


def cancel_order(ctx: RunContext[None], order_id: str, reason: str = "") -> str:
    """取消订单。

    :param order_id: 订单号
    :param reason: 取消原因
    """
    return order_id


def test_register_tools_and_plain_functions() -> None:
    registry = ToolRegistry()
    assert registry.register(get_order) is get_order
    wrapped = registry.register(cancel_order)
    assert isinstance(wrapped, Tool) and wrapped.function is cancel_order
    assert registry.names() == ["get_order", "cancel_order"]
    assert len(registry) == 2
    assert list(registry) == [get_order, wrapped]
    assert "get_order" in registry and get_order in registry and "refund" not in registry
    assert registry.get("cancel_order") is wrapped
    assert registry.register(get_order) is get_order  # the same tool again is a no-op


def test_registry_decorator_bare_and_with_options() -> None:
    registry = ToolRegistry()

    @registry.tool
    def ping() -> str:
        return "pong"

    @registry.tool(name="transfer_to_human", requires_approval=True, timeout=2)
    async def handoff(reason: str) -> str:
        return reason

    assert isinstance(ping, Tool) and ping() == "pong"
    assert registry.names() == ["ping", "transfer_to_human"]
    assert registry.get("transfer_to_human") is handoff
    assert handoff.requires_approval and handoff.timeout == 2.0


def test_duplicate_names_are_refused() -> None:
    registry = ToolRegistry([get_order])

    def other(order_id: str) -> str:
        return order_id

    with pytest.raises(DuplicateToolError, match="'get_order'"):
        registry.register(tool(name="get_order")(other))
    with pytest.raises(DuplicateToolError, match="'get_order'"):
        ToolRegistry([get_order, tool(name="get_order")(other)])
    assert registry.names() == ["get_order"]


def test_unknown_tool_message_lists_the_available_tools() -> None:
    registry = ToolRegistry([get_order, cancel_order])
    with pytest.raises(UnknownToolError) as info:
        registry.get("get_ordr")
    error = info.value
    assert error.tool_name == "get_ordr"
    assert "Unknown tool 'get_ordr'" in error.message
    assert "Did you mean 'get_order'?" in error.message
    assert "Available tools: get_order, cancel_order." in error.message
    with pytest.raises(UnknownToolError, match="no tools are available"):
        ToolRegistry().get("x")


def test_schemas_are_the_request_tools_array_and_stay_identical() -> None:
    registry = ToolRegistry([get_order, cancel_order])
    schemas = registry.schemas()
    assert schemas == [get_order.definition, registry.get("cancel_order").definition]
    assert registry.schemas() is schemas
    cancel = schemas[1]["function"]["parameters"]
    assert "ctx" not in cancel["properties"]
    assert cancel["properties"]["reason"] == {"type": "string", "description": "取消原因",
                                              "default": ""}
    text = registry.schemas_json()
    assert registry.schemas_json() is text
    assert json.loads(text) == schemas
    assert "查询订单状态。" in text and "\\u" not in text
    assert ", " not in text and ": " not in text.replace('": "', "")  # compact separators


def test_two_registries_with_the_same_tools_give_the_same_bytes() -> None:
    first = ToolRegistry([get_order, cancel_order]).schemas_json()
    second = ToolRegistry([get_order, cancel_order]).schemas_json()
    assert first == second


def test_registering_invalidates_the_cache() -> None:
    registry = ToolRegistry([get_order])
    before, before_json = registry.schemas(), registry.schemas_json()

    @registry.tool
    def later(x: int) -> int:
        return x

    after = registry.schemas()
    assert after is not before and len(after) == 2 and len(before) == 1
    assert registry.schemas_json() != before_json
    assert json.loads(registry.schemas_json())[1]["function"]["name"] == "later"


def test_from_a_mix_of_tools_functions_and_registries() -> None:
    inner = ToolRegistry([get_order])

    def ping() -> str:
        return "pong"

    registry = ToolRegistry.of([inner, cancel_order, tool(ping)])
    assert registry.names() == ["get_order", "cancel_order", "ping"]
    assert ToolRegistry.of(inner) is inner
    assert ToolRegistry.of(get_order).names() == ["get_order"]
    assert ToolRegistry.of(cancel_order).names() == ["cancel_order"]
    assert len(ToolRegistry.of(None)) == 0
    with pytest.raises(TypeError):
        ToolRegistry.of("get_order")  # type: ignore[arg-type]


def test_tools_of_one_shape_share_the_work_but_not_their_schemas() -> None:
    def make(i: int, with_context: bool) -> Tool:
        if with_context:
            def lookup(ctx: RunContext[None], order_id: str, limit: int = 3) -> str:
                """查询。

                Args:
                    order_id: 订单号。
                """
                return f"{order_id}:{limit}"
        else:
            def lookup(order_id: str, limit: int = 3) -> str:  # type: ignore[misc]
                """查询。

                Args:
                    order_id: 订单号。
                """
                return f"{order_id}:{limit}"
        return Tool(lookup, name=f"lookup_{i}")

    tools = [make(i, with_context=i % 2 == 1) for i in range(6)]
    registry = ToolRegistry(tools)
    assert len({json.dumps(t.parameters) for t in registry}) == 1
    for each in tools:
        assert each.parse_arguments('{"order_id": "A1"}') == {"order_id": "A1", "limit": 3}
    tools[0].parameters["properties"]["order_id"]["description"] = "changed"
    assert tools[2].parameters["properties"]["order_id"]["description"] == "订单号。"


def test_importing_tool_does_not_load_the_http_or_async_stack() -> None:
    import subprocess
    import sys

    code = ("import sys; from kimi_agent import tool, ToolRegistry; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'anyio', 'httpx2', 'httpx', 'jsonschema', 'structlog', 'asyncio'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
