"""The agent runs the model's tool calls: concurrently on kimi-k2-6, one by one on kimi-k2-5,
failures returned to the model, cancellation and limits. All on the simulator over loopback."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import pytest

from kimi_agent import Agent, MemorySession, RunContext, Tool, UsageLimits, tool
from kimi_agent.errors import (
    MaxStepsExceededError,
    ToolRetriesExceededError,
    UsageLimitExceededError,
)
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest, ToolCallSpec
from tests.simkit import Timeline, sim_client

pytestmark = pytest.mark.anyio

CITIES = ["北京", "上海", "广州", "深圳"]


def four_calls_then_summary(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="汇总：" + "；".join(r.content for r in request.tool_results))
    return Reply(reasoning="需要同时查四个城市的天气",
                 tool_calls=[("weather", {"city": c}) for c in CITIES])


def weather_tool(timeline: Timeline, wait: float = 0.5) -> Any:
    @tool
    async def weather(city: str) -> str:
        """查询城市天气。

        Args:
            city: 城市名。
        """
        started = timeline.start(city)
        await anyio.sleep(wait)
        timeline.end(city, started)
        return f"{city}：晴，25°C"
    return weather


async def test_four_calls_run_together_on_k2_6_and_results_keep_call_order() -> None:
    timeline = Timeline()
    sim = GatewaySimulator(responder=four_calls_then_summary)
    async with sim_client(sim) as client:
        agent = Agent(tools=[weather_tool(timeline)], client=client)
        result = await agent.run("帮我查一下北上广深的天气")
    assert timeline.all_overlap(), "the four 0.5 s tools must be running at the same time"
    assert timeline.max_active == 4
    assert result.output == "汇总：" + "；".join(f"{c}：晴，25°C" for c in CITIES)
    assert [c.name for c in result.steps[0].tool_calls] == ["weather"] * 4
    sent_back = sim.requests[-1].messages
    assistant = sent_back[-5]
    ids = [call["id"] for call in assistant["tool_calls"]]
    assert [m["tool_call_id"] for m in sent_back[-4:]] == ids, "results in the order of calls"
    assert [m["content"] for m in sent_back[-4:]] == [f"{c}：晴，25°C" for c in CITIES]


async def test_calls_run_one_after_another_in_order_on_k2_5() -> None:
    timeline = Timeline()
    sim = GatewaySimulator(responder=four_calls_then_summary)
    async with sim_client(sim) as client:
        agent = Agent(model="kimi-k2-5", fallback=None, tools=[weather_tool(timeline, 0.05)],
                      client=client)
        result = await agent.run("帮我查一下北上广深的天气")
    assert timeline.none_overlap()
    assert timeline.max_active == 1
    assert timeline.order == CITIES
    assert result.steps[0].model == "kimi-k2-5"


async def test_max_parallel_tools_bounds_concurrency() -> None:
    timeline = Timeline()
    sim = GatewaySimulator(responder=four_calls_then_summary)
    async with sim_client(sim) as client:
        agent = Agent(tools=[weather_tool(timeline, 0.05)], client=client, max_parallel_tools=2)
        await agent.run("天气")
    assert timeline.max_active == 2


async def test_sequential_tool_runs_alone_in_its_place() -> None:
    timeline = Timeline()

    @tool(sequential=True)
    async def write_log(text: str) -> str:
        """写日志。

        Args:
            text: 内容。
        """
        started = timeline.start("log")
        await anyio.sleep(0.05)
        timeline.end("log", started)
        return "ok"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="完成")
        return Reply(tool_calls=[("weather", {"city": "北京"}), ("write_log", {"text": "记录"}),
                                 ("weather", {"city": "上海"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[weather_tool(timeline, 0.05), write_log], client=client)
        await agent.run("查天气并记录")
    assert timeline.order == ["北京", "log", "上海"]
    assert timeline.none_overlap()


async def test_sync_tools_run_in_worker_threads() -> None:
    threads: list[str] = []

    @tool
    def lookup(code: str) -> str:
        """查编码。

        Args:
            code: 编码。
        """
        threads.append(threading.current_thread().name)
        return "结果"

    def responder(request: SimRequest) -> Reply:
        return Reply(text="好") if request.tool_results else Reply(
            tool_calls=[("lookup", {"code": "a"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        await Agent(tools=[lookup], client=client).run("查")
    assert threads and threads[0] != threading.main_thread().name


async def test_every_tool_failure_goes_back_to_the_model_as_a_readable_message() -> None:
    @tool
    async def explode(order_id: str) -> str:
        """总是失败。

        Args:
            order_id: 订单号。
        """
        raise RuntimeError(f"数据库连接失败：{order_id}")

    @tool(timeout=0.05)
    async def slow(order_id: str) -> str:
        """很慢。

        Args:
            order_id: 订单号。
        """
        await anyio.sleep(5)
        return "never"

    @tool
    async def typed(amount: int) -> str:
        """要整数。

        Args:
            amount: 金额。
        """
        return str(amount)

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="抱歉，系统出了点问题。")
        return Reply(tool_calls=[
            ("explode", {"order_id": "A1"}),
            ("slow", {"order_id": "A2"}),
            ("typed", {"amount": "十块"}),
            ToolCallSpec("typed", "{not json"),
            ("no_such_tool", {}),
        ])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[explode, slow, typed], client=client)
        result = await agent.run("查一下")
    assert result.output == "抱歉，系统出了点问题。"
    records = result.steps[0].tool_calls
    assert [r.status for r in records] == ["error"] * 5
    contents = [m["content"] for m in sim.requests[-1].messages[-5:]]
    assert "数据库连接失败：A1" in contents[0]
    assert "did not finish within 0.05 seconds" in contents[1]
    assert "amount" in contents[2]
    assert "JSON" in contents[3] or "json" in contents[3]
    assert "no_such_tool" in contents[4] and "explode" in contents[4], "lists the real tools"
    assert records[1].error_type == "ToolTimeoutError"


async def test_retry_budget_ends_the_run_when_the_model_keeps_failing() -> None:
    @tool
    async def flaky(x: int) -> str:
        """总失败。

        Args:
            x: 数字。
        """
        raise ValueError("不行")

    sim = GatewaySimulator(responder=lambda r: Reply(tool_calls=[("flaky", {"x": 1})]))
    session = MemorySession("s1")
    async with sim_client(sim) as client:
        agent = Agent(tools=[flaky], client=client, tool_retries=2)
        with pytest.raises(ToolRetriesExceededError, match="flaky") as caught:
            await agent.run("试试", session=session)
    assert len(sim.requests) == 3
    stored = await session.get_items()
    assert caught.value.messages == stored
    assert stored[-1].role == "tool", "every committed step is complete"


async def test_max_steps_and_usage_limits_end_the_run_with_the_messages_so_far() -> None:
    @tool
    async def again(n: int) -> str:
        """再来。

        Args:
            n: 次数。
        """
        return "再来一次"

    sim = GatewaySimulator(responder=lambda r: Reply(tool_calls=[("again", {"n": 1})]))
    async with sim_client(sim) as client:
        with pytest.raises(MaxStepsExceededError) as caught:
            await Agent(tools=[again], client=client, max_steps=3).run("循环")
        assert len(caught.value.messages) == 1 + 3 * 2
        assert caught.value.messages[0].content == "循环"  # type: ignore[union-attr]
        limits = UsageLimits(request_limit=2)
        with pytest.raises(UsageLimitExceededError, match="2 requests"):
            await Agent(tools=[again], client=client, usage_limits=limits).run("循环")
        tokens = UsageLimits(total_tokens_limit=10)
        with pytest.raises(UsageLimitExceededError, match="total tokens"):
            await Agent(tools=[again], client=client, usage_limits=tokens).run("循环")


async def test_cancelling_a_run_cancels_running_tools_and_keeps_history_consistent() -> None:
    started = anyio.Event()
    cancelled = anyio.Event()

    @tool
    async def hang(q: str) -> str:
        """一直等。

        Args:
            q: 问题。
        """
        if started.is_set():
            return "第二次很快"
        started.set()
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "never"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="好的")
        return Reply(reasoning="等一下", tool_calls=[("hang", {"q": "x"}), ("hang", {"q": "y"})])

    sim = GatewaySimulator(responder=responder)
    session = MemorySession("cancel")
    async with sim_client(sim) as client:
        agent = Agent(tools=[hang], client=client)
        async with anyio.create_task_group() as group:
            async def first() -> None:
                await agent.run("第一句", session=session)

            group.start_soon(first)
            await started.wait()
            group.cancel_scope.cancel()
        assert cancelled.is_set()
        stored = await session.get_items()
        assert [m.role for m in stored] == ["user"], "the step in flight is not half-stored"
        result = await agent.run("第二句", session=session)
    assert result.output == "好的"
    roles = [m.role for m in await session.get_items()]
    assert roles == ["user", "user", "assistant", "tool", "tool", "assistant"]


async def test_run_context_gives_deps_run_id_step_and_model() -> None:
    seen: list[tuple[Any, ...]] = []

    @tool
    def whoami(ctx: RunContext[dict[str, str]], question: str) -> str:
        """回答身份。

        Args:
            question: 问题。
        """
        seen.append((ctx.deps["shop"], ctx.run_id, ctx.step, ctx.model, ctx.tool_call_id))
        return ctx.deps["shop"]

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=request.tool_results[0].content)
        assert "ctx" not in json.dumps(request.tools)
        return Reply(tool_calls=[("whoami", {"question": "你是谁"})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        result = await Agent(tools=[whoami], client=client).run("你是谁", deps={"shop": "小店"})
    assert result.output == "小店"
    shop, run_id, step, model, call_id = seen[0]
    assert (shop, run_id, step, model) == ("小店", result.run_id, 1, "kimi-k2-6")
    assert call_id == result.steps[0].tool_calls[0].call_id


async def test_a_shared_timeout_stops_only_the_calls_still_running() -> None:
    @tool(timeout=0.2)
    async def fetch(delay: float) -> str:
        """按给定延迟返回。

        Args:
            delay: 秒。
        """
        await anyio.sleep(delay)
        return f"用了 {delay} 秒"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="完成")
        return Reply(tool_calls=[("fetch", {"delay": 0.0}), ("fetch", {"delay": 30}),
                                 ("fetch", {"delay": 0.01})])

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        async with Agent(tools=[fetch], client=client).stream("并发取数") as run:
            finished = [e for e in [e async for e in run] if e.kind == "tool_call_finished"]
    records = run.result.steps[0].tool_calls
    assert [r.status for r in records] == ["ok", "error", "ok"]
    assert records[1].error_type == "ToolTimeoutError"
    assert "0.2 seconds" in sim.requests[-1].messages[-2]["content"]
    assert sorted(e.record.call_id for e in finished) == sorted(r.call_id for r in records)


async def test_a_raw_schema_is_sent_normalised_and_its_real_constraints_still_hold() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "TicketArgs",
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^T[0-9]{3}$", "description": "工单号"},
            "when": {"type": "string", "format": "date"},
            "kind": {"oneOf": [{"const": "退货"}, {"const": "换货"}]},
            "parent": {"$ref": "#/$defs/Node"},
        },
        "required": ["code", "kind"],
        "$defs": {"Node": {"type": "object", "title": "Node", "properties": {
            "code": {"type": "string"},
            "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}}},
    }
    seen: list[dict[str, Any]] = []

    def open_ticket(**kwargs: Any) -> str:
        seen.append(kwargs)
        return "已创建"

    ticket = Tool.from_schema("open_ticket", "创建工单。", schema, open_ticket)

    replies = iter([
        Reply(tool_calls=[("open_ticket", {"code": "X1", "kind": "退货"})]),
        Reply(tool_calls=[("open_ticket", {"code": "T123", "kind": "换货",
                                           "parent": {"code": "T001"}})]),
        Reply(text="已创建"),
    ])

    def responder(request: SimRequest) -> Reply:
        return next(replies)

    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        result = await Agent(tools=[ticket], client=client).run("开个工单")
    sent = sim.requests[0].tools[0]["function"]["parameters"]
    assert sent["title"] == "TicketArgs" and "$defs" in sent, "walle takes titles and $defs"
    assert sent["properties"]["kind"] == {"anyOf": [{"type": "string", "enum": ["退货"]},
                                                    {"type": "string", "enum": ["换货"]}]}
    assert "regular expression" in sent["properties"]["code"]["description"]
    first, second = (step.tool_calls[0] for step in result.steps[:2])
    assert first.status == "error" and "code" in first.result, "the pattern still holds"
    assert second.status == "ok"
    assert seen == [{"code": "T123", "kind": "换货", "parent": {"code": "T001"}}]
