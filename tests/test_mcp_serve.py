"""`kimi-agent mcp serve`: our tools as an MCP server over stdio, driven by the MCP SDK's own
client, and round-tripped back into an agent through MCPToolset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kimi_agent import Agent
from kimi_agent.mcp import MCPToolset
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.clikit import run_cli
from tests.mcpkit import ROOT
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

SERVE = ["-m", "kimi_agent.cli", "mcp", "serve"]


def serve(*args: str, env: dict[str, str] | None = None) -> Client:
    params = StdioServerParameters(command=sys.executable, args=[*SERVE, *args], cwd=ROOT,
                                   env=env)
    return Client(stdio_client(params))


async def test_sdk_client_lists_and_calls_the_ready_made_tools() -> None:
    async with serve("kimi_agent_tools") as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert {"calculate", "current_time"} <= set(listed)
        assert "get_order" not in listed, "RunContext tools need --deps"
        assert "request_refund" not in listed, "approval tools need --allow-approval"
        assert "计算数学表达式" in (listed["calculate"].description or "")
        assert listed["calculate"].input_schema["required"] == ["expression"]

        total = await client.call_tool("calculate", {"expression": "299×85%"})
        assert not total.is_error
        assert "254.15" in total.content[0].text
        now = await client.call_tool("current_time", {"timezone": "Asia/Shanghai"})
        assert not now.is_error
        assert "星期" in now.content[0].text and "+08:00" in now.content[0].text

        bad = await client.call_tool("calculate", {"expression": "import os"})
        assert bad.is_error and bad.content[0].text
        missing = await client.call_tool("calculate", {})
        assert missing.is_error and "expression" in missing.content[0].text
        unknown = await client.call_tool("不存在", {})
        assert unknown.is_error and "Unknown tool" in unknown.content[0].text


async def test_deps_factory_serves_run_context_tools(tmp_path: Path) -> None:
    env = {"KIMI_AGENT_TEST_DB": str(tmp_path / "orders.db")}
    async with serve("kimi_agent_tools", "--deps", "tests.mcp_deps:shop", env=env) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "get_order" in names and "request_refund" not in names
        order = await client.call_tool("get_order", {"order_id": "A1024"})
    assert not order.is_error
    assert "无线蓝牙耳机" in order.content[0].text


async def test_served_tools_round_trip_into_an_agent() -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="合计 " + request.tool_results[0].content)
        return Reply(tool_calls=[("kimi_calculate", {"expression": "12.5*4"})])

    toolset = MCPToolset.stdio(sys.executable, [*SERVE, "kimi_agent_tools"], cwd=ROOT,
                               prefix="kimi")
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        async with Agent(tools=[toolset], client=client) as agent:
            result = await agent.run("12.5 乘以 4 是多少？")
        schema = {t["function"]["name"]: t for t in sim.requests[0].body["tools"]}
    assert "kimi_calculate" in schema and "kimi_current_time" in schema
    assert json.loads(result.output.removeprefix("合计 "))["result"].startswith("50")


def test_serve_explains_a_bad_target(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "mcp", "serve", "no_such_module_xyz")
    assert done.returncode == 1
    assert "no_such_module_xyz" in done.stderr and done.stdout == ""
