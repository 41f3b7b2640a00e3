"""MCPToolset against real MCP servers: the test server over stdio, streamable HTTP and SSE,
and `mcp-server-time` from PyPI. Names, schemas, results, errors, list changes, crashes."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys

import anyio
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kimi_agent import Tool
from kimi_agent.errors import ConfigurationError, KimiAgentError, ToolCallError
from kimi_agent.mcp import MCPConnectionError, MCPError, MCPToolError, MCPToolset
from kimi_agent.mcp._names import map_names
from tests.mcpkit import http_server, stdio_toolset, wait_disconnected

pytestmark = pytest.mark.anyio

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")  # `$` would let a trailing "\n" pass
FORBIDDEN = {"oneOf", "allOf", "const", "format", "pattern"}
"""Keywords walle's strict level refuses (titles and in-document $defs/$ref it accepts, so the
normalised raw schema may keep them)."""


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


def keys_in(schema: object) -> set[str]:
    if isinstance(schema, dict):
        found = set(schema)
        for key, value in schema.items():
            found |= keys_in(value) if key != "properties" else set().union(
                *(keys_in(v) for v in value.values()))
        return found
    if isinstance(schema, list):
        return set().union(*(keys_in(v) for v in schema))
    return set()


async def test_stdio_tools_are_listed_in_moonshot_form_and_the_broken_one_is_left_out(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kimi_agent")
    async with stdio_toolset() as toolset:
        tools = by_name(await toolset.tools())
        assert toolset.connected
    assert not toolset.connected
    assert "geo_lookup" in tools and "geo.lookup" not in tools
    assert all(NAME.match(name) for name in tools)
    assert tools["weather"].description.startswith("查询城市的天气")
    order = tools["place_order"].parameters
    assert not keys_in(order) & FORBIDDEN, "only what walle's strict level accepts"
    address = order["properties"]["order"]["properties"]["address"]
    assert address["properties"]["city"]["description"].startswith("城市")
    assert "broken" not in tools
    assert "broken" in toolset.skipped and "example.com" in toolset.skipped["broken"]
    assert any("broken" in r.getMessage() and "left out" in r.getMessage()
               for r in caplog.records)


async def test_calls_convert_results_chinese_structured_and_non_text_content() -> None:
    async with stdio_toolset() as toolset:
        tools = by_name(await toolset.tools())
        assert await tools["geo_lookup"].run({"city": "广州"}, None) == "广东省"
        args = tools["place_order"].parse_arguments(json.dumps(
            {"order": {"item": "茶叶", "quantity": 2,
                       "address": {"city": "上海", "street": "南京路1号"}}},
            ensure_ascii=False))
        placed = await tools["place_order"].run(args, None)
        assert json.loads(placed) == {"订单号": "A1024", "商品": "茶叶", "数量": 2,
                                      "寄往": "上海南京路1号"}
        assert "上海南京路1号" in placed, "Chinese kept, not \\u-escaped"
        snapshot = await tools["snapshot"].run({}, None)
        assert snapshot.splitlines()[0] == "这是监控截图"
        assert "[image: image/png, 70 bytes" in snapshot
        with pytest.raises(MCPToolError) as raised:
            await tools["check_stock"].run({"item": "茶叶"}, None)
    assert isinstance(raised.value, ToolCallError) and isinstance(raised.value, MCPError)
    assert raised.value.message.startswith("Tool 'check_stock' reported an error:")


async def test_prefix_include_exclude_and_flags() -> None:
    toolset = stdio_toolset(prefix="shop", include={"geo.lookup", "place_order", "weather"},
                            exclude={"weather"}, requires_approval={"place_order"},
                            sequential=True, timeout=5)
    async with toolset:
        tools = by_name(await toolset.tools())
        assert list(tools) == ["shop_place_order", "shop_geo_lookup"]
        assert tools["shop_place_order"].requires_approval
        assert not tools["shop_geo_lookup"].requires_approval
        assert all(t.sequential and t.timeout == 5.0 for t in tools.values())
        assert await tools["shop_geo_lookup"].run({"city": "杭州"}, None) == "浙江省"


@pytest.mark.parametrize("options", [{"prefix": "1bad"}, {"prefix": "有"}, {"timeout": 0},
                                     {"include": "weather"}])
def test_bad_options_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        stdio_toolset(**options)


async def test_same_tool_objects_until_the_server_says_its_list_changed() -> None:
    async with stdio_toolset() as toolset:
        first = await toolset.tools()
        assert await toolset.tools() is first
        assert toolset.changes == 0
        assert await by_name(first)["add_greet"].run({}, None) == "已增加 greet"
        with anyio.fail_after(10):
            while toolset.changes == 0:
                await anyio.sleep(0.01)
        second = await toolset.tools()
        assert [t.name for t in second] == [*(t.name for t in first), "greet"]
        assert all(a is b for a, b in zip(first, second, strict=False)), "unchanged reused"
        assert await by_name(second)["greet"].run({"name": "小明"}, None) == "你好，小明！"


async def test_a_server_killed_between_calls_is_started_again_for_the_next_call() -> None:
    async with stdio_toolset() as toolset:
        tools = by_name(await toolset.tools())
        first_pid = int(await tools["pid"].run({}, None))
        os.kill(first_pid, signal.SIGKILL)
        await wait_disconnected(toolset)
        assert await tools["geo_lookup"].run({"city": "广州"}, None) == "广东省"
        assert int(await tools["pid"].run({}, None)) != first_pid


async def test_a_crash_during_a_call_is_an_error_and_the_next_call_recovers() -> None:
    async with stdio_toolset() as toolset:
        tools = by_name(await toolset.tools())
        with pytest.raises(MCPConnectionError) as raised:
            await tools["crash"].run({}, None)
        assert "lost during the call of tool 'crash'" in str(raised.value)
        assert "may or may not have run" in str(raised.value)
        assert await tools["geo_lookup"].run({"city": "杭州"}, None) == "浙江省"


async def test_a_server_that_cannot_start_is_a_typed_connection_error() -> None:
    missing = MCPToolset.stdio("/nonexistent/mcp-server-无此程序")
    with pytest.raises(MCPConnectionError) as raised:
        await missing.tools()
    assert isinstance(raised.value, KimiAgentError)
    exits = MCPToolset.stdio(sys.executable, ["-c", "print('not a server')"],
                             connect_timeout=20)
    with pytest.raises(MCPConnectionError, match="cannot connect to MCP server"):
        await exits.tools()


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_http_transports_list_and_call_with_chinese(transport: str) -> None:
    async with http_server(transport) as url:
        toolset = MCPToolset.http(url, headers={"X-Test": "1"}, transport=(
            "sse" if transport == "sse" else "streamable-http"), prefix="web")
        async with toolset:
            tools = by_name(await toolset.tools())
            assert "web_geo_lookup" in tools and "web_broken" not in tools
            assert await tools["web_geo_lookup"].run({"city": "广州"}, None) == "广东省"
            with pytest.raises(MCPToolError, match=r"reported an error"):
                await tools["web_check_stock"].run({"item": "茶叶"}, None)


async def test_mcp_server_time_from_pypi_over_stdio() -> None:
    toolset = MCPToolset.stdio(sys.executable, ["-m", "mcp_server_time",
                                                "--local-timezone", "Asia/Shanghai"])
    async with toolset:
        tools = by_name(await toolset.tools())
        assert {"get_current_time", "convert_time"} <= set(tools)
        now = json.loads(await tools["get_current_time"].run({"timezone": "Asia/Shanghai"},
                                                             None))
        assert now["timezone"] == "Asia/Shanghai" and now["datetime"].endswith("+08:00")


@given(st.lists(st.text(min_size=1, max_size=80), max_size=12),
       st.sampled_from([None, "srv", "a-b"]))
@example(["\n"], "srv")        # CI found it: a name that is only a newline
def test_mapped_names_are_valid_distinct_and_stable(names: list[str], prefix: str | None
                                                    ) -> None:
    mapped, problems = map_names(names, prefix)
    assert set(mapped) | set(problems) == set(names)
    assert all(NAME.match(n) for n in mapped.values())
    assert len(set(mapped.values())) == len(mapped)
    for name, tool_name in mapped.items():
        plain = f"{prefix}_{name}" if prefix else name
        if NAME.match(plain):
            assert tool_name == plain, "valid names are kept as they are"
    assert map_names(names, prefix) == (mapped, problems)


async def test_registry_keeps_local_tools_and_the_first_of_two_clashing_names(
        caplog: pytest.LogCaptureFixture) -> None:
    from kimi_agent import ToolRegistry, tool

    @tool
    def weather(city: str) -> str:
        """本地天气。"""
        return "本地"

    caplog.set_level(logging.WARNING, logger="kimi_agent")
    first, second = stdio_toolset(include={"geo.lookup", "weather"}), stdio_toolset(
        include={"geo.lookup"})
    registry = ToolRegistry([weather, first, second])
    assert ToolRegistry.of(first).toolsets == [first]
    try:
        await registry.refresh()
        schemas = registry.schemas()
        await registry.refresh()
        assert registry.schemas() is schemas, "nothing changed: the same list"
        assert await registry.get("geo_lookup").run({"city": "广州"}, None) == "广东省"
    finally:
        await registry.close_toolsets()
    assert registry.names() == ["weather", "geo_lookup"]
    assert registry.get("weather") is weather
    messages = [r.getMessage() for r in caplog.records]
    assert any("'weather'" in m and "another tool of the agent" in m for m in messages)
    assert any("'geo_lookup'" in m and "another tool of the agent" in m for m in messages)
    assert not first.connected and not second.connected
