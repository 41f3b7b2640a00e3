"""Agents with MCP tools on the gateway simulator: the same executor as local tools (parallel on
kimi-k2-6, one by one on kimi-k2-5 and after a fallback, events, approvals, timeouts), a
server killed mid-conversation, and `async with agent:` opening and closing the server."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import anyio
import pytest

from kimi_agent import Agent, MemorySession, ToolRegistry, tool
from kimi_agent import events as ev
from kimi_agent.mcp import MCPToolset
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.mcpkit import stdio_toolset, wait_disconnected
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

CITIES = ["北京", "上海"]


def two_weathers(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="；".join(r.content for r in request.tool_results))
    return Reply(reasoning="同时查两个城市",
                 tool_calls=[("weather", {"city": c, "seconds": 0.5}) for c in CITIES])


async def server_spans(toolset: MCPToolset) -> list[dict[str, Any]]:
    """When the server's weather tool ran, as recorded inside the server."""
    spans = {t.name: t for t in await toolset.tools()}["spans"]
    return list(json.loads(await spans.run({}, None)))


async def test_two_mcp_calls_overlap_on_k2_6() -> None:
    sim = GatewaySimulator(responder=two_weathers)
    async with sim_client(sim) as client, stdio_toolset() as toolset:
        agent = Agent(tools=[toolset], client=client)
        result = await agent.run("北京和上海的天气怎么样？")
        spans = await server_spans(toolset)
    assert result.output == "北京：晴，25°C；上海：晴，25°C"
    assert [r.status for r in result.steps[0].tool_calls] == ["ok", "ok"]
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans), "they overlap"


@pytest.mark.parametrize("how", ["k2-5", "fallback"])
async def test_mcp_calls_run_one_by_one_on_k2_5(how: str) -> None:
    sim = GatewaySimulator(responder=two_weathers)
    if how == "fallback":
        sim.inject("kimi-k2-6", status=503, always=True)
    async with sim_client(sim) as client, stdio_toolset() as toolset:
        agent = (Agent(model="kimi-k2-5", fallback=None, tools=[toolset], client=client)
                 if how == "k2-5" else Agent(tools=[toolset], client=client))
        result = await agent.run("北京和上海的天气怎么样？")
        spans = await server_spans(toolset)
    assert result.steps[0].model == "kimi-k2-5"
    assert [s["key"] for s in spans] == CITIES, "in the order of the calls"
    assert spans[0]["end"] <= spans[1]["start"], "one after the other"


async def test_mcp_local_and_registry_tools_together_with_byte_stable_schemas() -> None:
    @tool
    def translate(text: str) -> str:
        """把中文翻译成英文。

        Args:
            text: 要翻译的中文。
        """
        return {"你好": "hello"}.get(text, text)

    @tool
    def shout(text: str) -> str:
        """大声说。"""
        return text + "！"

    def responder(request: SimRequest) -> Reply:
        done = {r.name for r in request.tool_results}
        if not request.tool_results:
            return Reply(tool_calls=[("geo_lookup", {"city": "广州"}), ("translate",
                                                                      {"text": "你好"})])
        if "shout" not in done:
            return Reply(tool_calls=[("shout", {"text": "好"})])
        return Reply(text="完成")

    sim = GatewaySimulator(responder=responder)
    toolset = stdio_toolset(exclude={"crash"})
    async with sim_client(sim) as client:
        agent = Agent(tools=[toolset, translate, ToolRegistry([shout])], client=client)
        async with agent:
            assert toolset.connected, "async with agent: connects the server"
            result = await agent.run("广州在哪个省？")
            second = await agent.run("再来一次")
        assert not toolset.connected, "and closes it"
    assert [r.result for r in result.steps[0].tool_calls] == ["广东省", "hello"]
    assert second.output == "完成"
    names = sim.requests[0].body["tools"]
    listed = [t["function"]["name"] for t in names]
    assert listed[:2] == ["translate", "shout"] and "geo_lookup" in listed
    assert "crash" not in listed and "broken" not in listed
    tails = {r.raw_body[r.raw_body.index(b'"tools":'):] for r in sim.requests}
    assert len(tails) == 1, "the tools array is byte-identical from call to call"


async def test_server_killed_mid_conversation_and_a_crash_during_a_call_recover() -> None:
    def responder(request: SimRequest) -> Reply:
        if "进程" in request.last_user_text:
            if request.tool_results:
                return Reply(text=request.tool_results[0].content)
            return Reply(tool_calls=[("pid", {})])
        last_user = max(i for i, m in enumerate(request.messages) if m["role"] == "user")
        done = sum(m["role"] == "tool" for m in request.messages[last_user:])
        plan = [("geo_lookup", {"city": "杭州"}), ("crash", {}), ("geo_lookup", {"city": "广州"})]
        if done < len(plan):
            return Reply(tool_calls=[plan[done]])
        return Reply(text="查到了：" + request.tool_results[0].content)

    sim = GatewaySimulator(responder=responder)
    session = MemorySession()
    async with sim_client(sim) as client, stdio_toolset() as toolset:
        agent = Agent(tools=[toolset], client=client)
        first = await agent.run("服务器的进程号是多少？", session=session)
        os.kill(int(first.output), signal.SIGKILL)
        await wait_disconnected(toolset)
        second = await agent.run("杭州在哪个省？然后让它崩溃", session=session)
    calls = [c for step in second.steps for c in step.tool_calls]
    assert [(c.name, c.status) for c in calls] == [
        ("geo_lookup", "ok"), ("crash", "error"), ("geo_lookup", "ok")]
    assert calls[0].result == "浙江省" and calls[2].result == "广东省"
    assert calls[1].error_type == "MCPConnectionError"
    assert "may or may not have run" in calls[1].result, "the model is told what happened"
    assert second.output == "查到了：广东省"


async def test_approval_events_and_resume_in_a_fresh_agent() -> None:
    order = {"order": {"item": "龙井茶", "quantity": 1,
                       "address": {"city": "杭州", "street": "西湖路1号"}}}

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="已下单：" + request.tool_results[0].content)
        return Reply(tool_calls=[("shop_place_order", order)])

    sim = GatewaySimulator(responder=responder)
    session = MemorySession()
    async with sim_client(sim) as client:
        toolset = stdio_toolset(prefix="shop", requires_approval={"place_order"})
        async with Agent(tools=[toolset], client=client) as agent:
            async with agent.stream("买一盒龙井茶寄到杭州", session=session) as run:
                events = [event async for event in run]
            assert run.result.status == "pending_approval"
        started = [e for e in events if isinstance(e, ev.ToolCallStarted)]
        assert [e.name for e in started] == ["shop_place_order"]
        pending = run.result.pending_approvals
        assert pending[0].arguments == order

        later = Agent(tools=[stdio_toolset(prefix="shop", requires_approval=True)],
                      client=client)
        async with later:
            assert [p.tool for p in await later.pending_approvals(session)] == [
                "shop_place_order"]
            done = await later.resume(session, approved=[pending[0].call_id])
    assert done.output.startswith("已下单：")
    assert json.loads(done.output.removeprefix("已下单："))["寄往"] == "杭州西湖路1号"


async def test_mcp_call_timeout_is_a_result_and_the_session_stays_usable() -> None:
    def responder(request: SimRequest) -> Reply:
        results = request.tool_results
        if not results:
            return Reply(tool_calls=[("weather", {"city": "北京", "seconds": 5})])
        if results[0].name == "weather":
            return Reply(tool_calls=[("geo_lookup", {"city": "广州"})])
        return Reply(text=results[0].content)

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client, stdio_toolset(timeout=0.3) as toolset:
        result = await Agent(tools=[toolset], client=client).run("北京天气？")
    first = result.steps[0].tool_calls[0]
    assert (first.status, first.error_type) == ("error", "ToolTimeoutError")
    assert result.output == "广东省"


async def test_concurrent_runs_share_one_server_which_the_agent_closes() -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=request.tool_results[0].content)
        return Reply(tool_calls=[("pid", {})])

    sim = GatewaySimulator(responder=responder)
    toolset = stdio_toolset()
    async with sim_client(sim) as client:
        agent = Agent(tools=[toolset], client=client)
        outputs: list[str] = []

        async def one(prompt: str) -> None:
            outputs.append((await agent.run(prompt)).output)

        async with anyio.create_task_group() as group:
            for prompt in ("进程号？", "再查一次进程号", "第三次"):
                group.start_soon(one, prompt)
        await agent.aclose()
    assert len(set(outputs)) == 1, "one session, one server process for every run"
    assert not toolset.connected
    with pytest.raises(ProcessLookupError):
        os.kill(int(outputs[0]), 0)


async def test_a_tool_list_change_reaches_the_next_run() -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=request.tool_results[0].content)
        if "greet" in request.tool_names:
            return Reply(tool_calls=[("greet", {"name": "小红"})])
        return Reply(tool_calls=[("add_greet", {})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client, stdio_toolset() as toolset:
        agent = Agent(tools=[toolset], client=client)
        first = await agent.run("加一个问候工具")
        with anyio.fail_after(10):
            while toolset.changes == 0:
                await anyio.sleep(0.01)
        second = await agent.run("跟小红打个招呼")
    assert first.output == "已增加 greet"
    assert second.output == "你好，小红！"
    assert "greet" not in sim.requests[0].tool_names
    assert "greet" in sim.requests[-1].tool_names


def test_run_sync_opens_the_server_again_in_each_event_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=request.tool_results[0].content)
        return Reply(tool_calls=[("geo_lookup", {"city": "广州" if "广州" in
                                                 request.last_user_text else "杭州"})])

    sim = GatewaySimulator(responder=responder)
    toolset = stdio_toolset()
    with sim.serve_in_thread() as url:
        monkeypatch.setenv("BYTESPIKE_BASE_URL", url)
        monkeypatch.setenv("BYTESPIKE_API_KEY", sim.api_key)
        agent = Agent(tools=[toolset])
        assert agent.run_sync("广州在哪个省？").output == "广东省"
        assert agent.run_sync("杭州呢？").output == "浙江省"
