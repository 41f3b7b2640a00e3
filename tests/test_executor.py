"""What the executor guarantees whatever a tool does: honest timeouts, no stray
cancellation, a finished record for every call, text UTF-8 can carry, capped results, and a
stable idempotency key. Through the Agent on the simulator over loopback, and through
`ToolExecutor.run_call`, the entry point for starting one call early."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_agent import Agent, MemorySession, RunContext, Tool, tool
from kimi_agent.errors import ToolArgumentError, ToolDefinitionError
from kimi_agent.sessions._sqlite import SQLiteSession
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest, ToolCallSpec
from kimi_agent.tooling._executor import ToolExecutor
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._run_context import reply_id_of
from kimi_agent.wire import AssistantMessage, FunctionCall, ToolCall
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


def calls_once(*calls: Any, answer: str = "好的") -> Any:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=answer + "：" + "｜".join(r.content for r in request.tool_results))
        return Reply(tool_calls=list(calls))
    return responder


def _call(name: str, arguments: str = "{}", call_id: str = "c:0") -> ToolCall:
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


# --------------------------------------------------------------------------- timeouts


async def test_a_sync_tool_past_its_timeout_is_reported_as_outcome_unknown() -> None:
    release, landed = threading.Event(), threading.Event()

    @tool(timeout=0.05)
    def refund(order_id: str) -> str:
        """退款。

        Args:
            order_id: 订单号。
        """
        release.wait(30)
        landed.set()  # the work lands after the model was told about the timeout
        return "已退款"

    sim = GatewaySimulator(responder=calls_once(("refund", {"order_id": "A1"})))
    async with sim_client(sim) as client:
        result = await Agent(tools=[refund], client=client).run("退款")
    record = result.steps[0].tool_calls[0]
    assert (record.status, record.error_type, record.outcome_unknown) == (
        "error", "timeout_unknown_outcome", True)
    told = sim.requests[-1].messages[-1]["content"]
    assert "outcome is unknown" in told and "Do not call it again" in told
    assert not landed.is_set()
    release.set()
    assert await anyio.to_thread.run_sync(landed.wait, 30)


async def test_an_async_or_read_only_tool_at_its_timeout_was_stopped() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        """慢。"""
        await anyio.sleep(30)
        return ""

    @tool(timeout=0.05, read_only=True)
    def lookup() -> str:
        """查询。"""
        threading.Event().wait(1)
        return ""

    registry = ToolRegistry([slow, lookup])
    executor = ToolExecutor(registry)
    ctx: RunContext[None] = RunContext(deps=None, run_id="r")
    for name in ("slow", "lookup"):
        record = await executor.run_call(_call(name), ctx)
        assert (record.status, record.error_type, record.outcome_unknown) == (
            "error", "ToolTimeoutError", False)
        assert "was stopped" in record.result


def test_a_blocked_sync_tool_does_not_keep_the_process_from_exiting() -> None:
    script = textwrap.dedent("""
        import asyncio, threading
        from kimi_agent import Agent, tool
        from kimi_agent.testing import GatewaySimulator, Reply
        from tests.simkit import sim_client

        @tool(timeout=0.05)
        def stuck() -> str:
            \"\"\"永远卡住。\"\"\"
            threading.Event().wait()
            return ""

        def responder(request):
            if request.tool_results:
                return Reply(text="done")
            return Reply(tool_calls=[("stuck", {})])

        async def main():
            sim = GatewaySimulator(responder=responder)
            async with sim_client(sim) as client:
                result = await Agent(tools=[stuck], client=client).run("go")
            print(result.output, result.steps[0].tool_calls[0].outcome_unknown)

        asyncio.run(main())
    """)
    # the timeout only guards against the hang being fixed in reverse: a blocked non-daemon
    # thread would keep the interpreter alive for ever
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", "True"]


# --------------------------------------------------------------------------- cancellation


async def test_a_stray_cancelled_error_is_a_tool_error_and_siblings_keep_their_results() -> None:
    @tool
    async def broken(x: int) -> str:
        """坏的。

        Args:
            x: 数。
        """
        raise asyncio.CancelledError

    @tool
    async def fine(x: int) -> str:
        """好的。

        Args:
            x: 数。
        """
        await anyio.sleep(0.01)
        return f"结果{x}"

    sim = GatewaySimulator(responder=calls_once(("fine", {"x": 1}), ("broken", {"x": 2}),
                                                ("fine", {"x": 3})))
    async with sim_client(sim) as client:
        agent = Agent(tools=[broken, fine], client=client)
        result = await agent.run("并行")
        alone = GatewaySimulator(responder=calls_once(("broken", {"x": 1})))
    records = result.steps[0].tool_calls
    assert [(r.status, r.result) for r in records if r.name == "fine"] == [
        ("ok", "结果1"), ("ok", "结果3")]
    assert records[1].status == "error"
    assert "CancelledError without being cancelled" in records[1].result
    async with sim_client(alone) as client:
        single = await Agent(tools=[broken], client=client).run("单个")
    assert single.status == "completed"
    assert single.steps[0].tool_calls[0].status == "error"


async def test_a_real_cancellation_still_cancels_and_marks_unfinished_calls() -> None:
    started = anyio.Event()

    @tool
    async def wait_forever() -> str:
        """等待。"""
        started.set()
        await anyio.sleep(60)
        return ""

    executor = ToolExecutor(ToolRegistry([wait_forever]), default_timeout=None)
    ctx: RunContext[None] = RunContext(deps=None, run_id="r")
    calls = [_call("wait_forever", call_id=f"w:{i}") for i in range(3)]
    seen: list[Any] = []

    async def observe(phase: str, item: Any) -> None:
        seen.append((phase, item))

    with anyio.move_on_after(0.5) as scope:
        await executor.execute(calls, ctx, parallel=True, on_call=observe)
    assert scope.cancelled_caught and started.is_set()
    assert [phase for phase, _ in seen] == ["started"] * 3


# --------------------------------------------------------------------------- arguments


@tool
def echo(text: str, n: int = 0) -> str:
    """回声。

    Args:
        text: 文本。
        n: 数字。
    """
    return text


@pytest.mark.parametrize(("raw", "fragment"), [
    ('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"text": "a", "n": ' + "9" * 5000 + "}", "cannot be read"),
])
def test_pathological_arguments_are_argument_errors(raw: str, fragment: str) -> None:
    with pytest.raises(ToolArgumentError) as info:
        echo.parse_arguments(raw)
    assert fragment in info.value.message
    assert "Call 'echo' again" in info.value.message


def test_lone_surrogates_in_arguments_are_replaced() -> None:
    assert echo.parse_arguments('{"text": "订单\\ud800号"}') == {"text": "订单\ufffd号", "n": 0}
    assert echo.parse_arguments('{"text": "坏\ud800"}') == {"text": "坏\ufffd", "n": 0}
    assert echo.parse_arguments('{"text": "\\ud83d\\ude00"}') == {"text": "😀", "n": 0}


async def test_a_tool_error_whose_message_cannot_be_shown_is_still_a_tool_error() -> None:
    class Opaque(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    @tool
    async def opaque() -> str:
        """不透明。"""
        raise Opaque

    @tool
    async def lone() -> str:
        """坏字符。"""
        return "结果\ud800"

    executor = ToolExecutor(ToolRegistry([opaque, lone]))
    ctx: RunContext[None] = RunContext(deps=None, run_id="r")
    record = await executor.run_call(_call("opaque"), ctx)
    assert record.status == "error"
    assert "Opaque whose message cannot be shown" in record.result
    record = await executor.run_call(_call("lone"), ctx)
    assert record.result == "结果\ufffd"
    record.result.encode("utf-8")


# --------------------------------------------------------------------------- result caps


async def test_results_are_capped_with_a_note_for_the_model() -> None:
    @tool
    def dump() -> str:
        """导出。"""
        return "数" * 250_000

    @tool(max_result_chars=10)
    def short() -> str:
        """短。"""
        return "一二三四五六七八九十十一"

    sim = GatewaySimulator(responder=calls_once(("dump", {}), ("short", {})))
    async with sim_client(sim) as client:
        agent = Agent(tools=[dump, short], client=client)
        result = await agent.run("导出全部")
        dumped, cut = (r.result for r in result.steps[0].tool_calls)
        assert dumped.startswith("数" * 100_000 + "\n[… result cut: 250,000 characters")
        assert len(dumped) < 100_200
        assert cut.startswith("一二三四五六七八九十\n[… result cut: 12 characters in all")
        uncapped = Agent(tools=[dump, short], client=client, max_tool_result_chars=None)
        uncut = await uncapped.run("再导出")
    assert uncut.steps[0].tool_calls[0].result == "数" * 250_000


def test_bad_caps_are_refused() -> None:
    def f() -> str:
        return ""

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ToolDefinitionError, match="max_result_chars"):
            tool(max_result_chars=bad)(f)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="max_result_chars"):
        ToolExecutor(ToolRegistry(), max_result_chars=0)


# --------------------------------------------------------------------------- read-only, run_call


async def test_read_only_tools_and_run_call() -> None:
    @tool(read_only=True)
    async def price(sku: str) -> str:
        """查价格。

        Args:
            sku: 商品编号。
        """
        return f"{sku}: 9.9"

    @tool(requires_approval=True)
    async def refund(order_id: str) -> str:
        """退款。

        Args:
            order_id: 订单号。
        """
        return "已退款"

    assert price.read_only and not refund.read_only
    assert "read_only=True" in repr(price)
    with pytest.raises(ToolDefinitionError, match="read_only"):
        tool(read_only=True, requires_approval=True)(refund.function)
    executor = ToolExecutor(ToolRegistry([price, refund]))
    ctx: RunContext[None] = RunContext(deps=None, run_id="r")
    record = await executor.run_call(_call("price", '{"sku": "耳机"}'), ctx)
    assert (record.status, record.result, record.call_id) == ("ok", "耳机: 9.9", "c:0")
    assert record.finished_at >= record.started_at > 0
    waiting = await executor.run_call(_call("refund", '{"order_id": "A1"}'), ctx)
    assert waiting.status == "pending_approval"
    approved = await executor.run_call(_call("refund", '{"order_id": "A1"}'), ctx,
                                       approved=True)
    assert (approved.status, approved.result) == ("ok", "已退款")


# --------------------------------------------------------------------------- idempotency keys


async def test_idempotency_keys_survive_a_resume_in_another_agent(tmp_path: Path) -> None:
    keys: list[str] = []

    @tool(requires_approval=True)
    def refund(ctx: RunContext[None], order_id: str) -> str:
        """退款。

        Args:
            order_id: 订单号。
        """
        keys.append(ctx.idempotency_key)
        return "已退款"

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text="处理完毕")
        # Moonshot-style ids repeat across turns: the same id in both replies
        return Reply(reasoning=f"退款 {request.last_user_text}",
                     tool_calls=[ToolCallSpec("refund", {"order_id": "A1"}, id="refund:0")])

    sim = GatewaySimulator(responder=responder)
    db = tmp_path / "keys.db"
    async with sim_client(sim) as client:
        async with SQLiteSession("客户-1", db) as session:
            first = await Agent(tools=[refund], client=client).run("第一次", session=session)
            assert first.pending_approvals, (first.status, first.steps[0].tool_calls)
            await Agent(tools=[refund], client=client).resume(
                session, approved=[first.pending_approvals[0].call_id])
            second = await Agent(tools=[refund], client=client).run("第二次", session=session)
            await Agent(tools=[refund], client=client).resume(
                session, approved=[second.pending_approvals[0].call_id])
        async with SQLiteSession("客户-1", db) as reloaded:
            replies = [m for m in await reloaded.get_items()
                       if isinstance(m, AssistantMessage) and m.tool_calls]
    expected = [f"客户-1:{reply_id_of(m)}:refund:0" for m in replies]
    assert keys == expected
    assert keys[0] != keys[1], "a later reply reusing the call id gets a new key"


async def test_without_a_session_the_key_is_unique_to_the_run() -> None:
    keys: list[str] = []

    @tool
    def pay(ctx: RunContext[None]) -> str:
        """付款。"""
        keys.append(ctx.idempotency_key)
        return "ok"

    sim = GatewaySimulator(responder=calls_once(("pay", {}), ("pay", {})))
    async with sim_client(sim) as client:
        result = await Agent(tools=[pay], client=client).run("付", session=MemorySession())
        plain = await Agent(tools=[pay], client=client).run("付")
    assert len(set(keys)) == 4
    assert keys[2].startswith(f"{plain.run_id}:1:")
    assert result.status == "completed"
    with pytest.raises(RuntimeError, match="tool call"):
        _ = RunContext(deps=None, run_id="r").idempotency_key


def test_tool_from_schema_keeps_new_options() -> None:
    t = Tool.from_schema("lookup", "查", {"type": "object", "properties": {}},
                         lambda **kw: "", read_only=True, max_result_chars=50)
    again = tool(timeout=3)(t)
    assert (again.read_only, again.max_result_chars, again.timeout) == (True, 50, 3.0)
    assert json.dumps(again.parameters) == json.dumps(t.parameters)
