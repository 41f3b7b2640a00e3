"""The reliability suite's long runs, short (issue 13): a soak of several processes on one
SQLite file with faults at a rate, and a `kill -9` loop — each must end with no untyped
error, no lost or corrupted message and every session accepted by the next run. The long
versions are `python -m reliability soak` / `killloop`; their figures are in RELIABILITY.md.
Also: the session checks themselves, and a foreign write before a run's first commit."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kimi_agent import Agent, RunContext, SQLiteSession
from kimi_agent.testing import GatewaySimulator
from kimi_agent.wire import AssistantMessage, ToolMessage, UserMessage
from reliability._checks import history_problems
from reliability._kit import shop
from tests.simkit import sim_client

ROOT = Path(__file__).resolve().parent.parent


def _command(*args: str, timeout: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "reliability", *args, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no summary (exit {done.returncode}): {done.stderr[-2000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0, json.dumps(summary, ensure_ascii=False, indent=1)
    return summary


@pytest.mark.timeout(180)
def test_a_short_soak_loses_nothing_and_raises_only_typed_errors(tmp_path: Path) -> None:
    summary = _command("soak", "--seconds", "12", "--procs", "2", "--conversations", "5",
                       "--shared", "1", "--fault-rate", "0.3", "--net-fault-rate", "0.05",
                       "--tool-rate", "0.25", "--cancel-rate", "0.1", "--dir", str(tmp_path),
                       timeout=170)
    assert summary["runs"] >= 40
    assert summary["untyped_errors"] == 0, summary["untyped"]
    assert summary["typed_errors"] > 0 and summary["cancelled"] > 0
    assert sum(summary["faults"]["simulator"].values()) > 0
    assert sum(summary["faults"]["network"].values()) > 0
    verdict = summary["verdict"]
    assert (verdict["lost"], verdict["corrupted"], verdict["not_accepted"]) == (0, 0, 0)
    assert verdict["sessions"] == 2 * 5 + 1
    for worker in summary["workers"]:
        assert worker["after"]["open_fds"] <= worker["before"]["open_fds"] + 8, worker


@pytest.mark.timeout(180)
def test_a_short_kill_loop_leaves_every_session_valid(tmp_path: Path) -> None:
    summary = _command("killloop", "--kills", "6", "--conversations", "4", "--dir",
                       str(tmp_path), timeout=170)
    assert summary["kills"] == 6
    assert summary["rounds_with_invalid_sessions"] == 0, summary["bad_rounds"]
    final = summary["final"]
    assert (final["lost"], final["corrupted"], final["not_accepted"]) == (0, 0, 0)
    assert summary["runs_completed"] > 0


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": "get_order", "arguments": '{"order_id": "A1"}'}}


def test_the_session_checks_name_every_kind_of_damage() -> None:
    good = [UserMessage(content="查 A1"),
            AssistantMessage(content="", reasoning_content="查", tool_calls=[_call("a:0")]),
            ToolMessage(tool_call_id="a:0", content="运输中"),
            AssistantMessage(content="运输中。"), UserMessage(content="谢谢")]
    assert history_problems(good, prompts=["查 A1", "谢谢"]) == []
    assert history_problems(good[:2], pending={"a:0"}) == []
    cases = {
        "no result": good[:2] + good[3:],
        "did not call": [*good[:3], ToolMessage(tool_call_id="a:0", content="又一次")],
        "no tool step": [good[0], ToolMessage(tool_call_id="x", content="?")],
        "neither text nor tool calls": [good[0], AssistantMessage(content="")],
        "duplicate tool-call ids": [good[0], AssistantMessage(
            content="", tool_calls=[_call("d"), _call("d")]),
            ToolMessage(tool_call_id="d", content="1")],
        "empty id": [good[0], AssistantMessage(content="", tool_calls=[_call("")]),
                     ToolMessage(tool_call_id="", content="1")],
    }
    for expected, history in cases.items():
        problems = history_problems(history)
        assert any(expected in p for p in problems), (expected, problems)
    lost = history_problems(good, prompts=["谢谢", "查 A1"])
    assert lost == ["user message lost or out of order: '查 A1'"]


@pytest.mark.anyio
async def test_a_foreign_write_before_the_first_commit_keeps_the_users_message(
        tmp_path: Path) -> None:
    """Another process appends between a run's read of the history and its first write: the
    run reads again and goes on, instead of dropping the prompt with ConcurrentRunError."""
    db = tmp_path / "s.db"
    wrote: list[int] = []

    def instructions(ctx: RunContext[Any]) -> str:
        if not wrote:  # resolved after the history was read, before the prompt is stored
            with sqlite3.connect(db) as raw:
                seq = raw.execute("SELECT MAX(seq) FROM messages").fetchone()[0] + 1
                raw.execute("INSERT INTO messages (session_id, seq, role, json, created_at) "
                            "VALUES ('顾客', ?, 'user', ?, 'now')",
                            (seq, '{"role": "user", "content": "另一个进程的消息"}'))
            wrote.append(seq)
        return "你是网店客服。"

    sim = GatewaySimulator(responder=shop)
    async with sim_client(sim) as client, SQLiteSession("顾客", db) as session:
        await Agent(client=client).run("第一句", session=session)
        result = await Agent(client=client, instructions=instructions).run("第二句",
                                                                            session=session)
        assert result.output == "收到：第二句"
        history = await session.get_items()
    assert history_problems(history, prompts=["第一句", "另一个进程的消息", "第二句"]) == []
    assert sim.last_request.body["messages"][-2]["content"] == "另一个进程的消息"


@pytest.mark.anyio
async def test_streamed_runs_leave_no_resource_to_the_garbage_collector() -> None:
    import gc
    import warnings

    sim = GatewaySimulator(responder=shop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with sim_client(sim) as client:
            agent = Agent(client=client)
            for prompt in ("你好", "订单 A1024 到哪了？"):
                async with agent.stream(prompt) as run:
                    async for _ in run:
                        pass
            async with agent.stream("提前离开") as run:
                async for _ in run:
                    break
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
