"""Agents on SQLite sessions, on the strict simulator over loopback: long conversations,
several processes and 50 concurrent sessions on one file, `kill -9` in the middle of a step,
and a history left dangling by a crash.

The simulator refuses any history Moonshot would refuse (an assistant tool-call message not
followed by one tool message per call, a missing `reasoning_content`, ...), so "every request
was accepted" means every history the sessions produced is valid on the wire.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import anyio
import pytest

from kimi_agent import Agent, GatewayClient
from kimi_agent.agent._loop import INTERRUPTED_TEXT
from kimi_agent.sessions._sqlite import SQLiteSession, SQLiteStore
from kimi_agent.testing import GatewaySimulator
from kimi_agent.wire import (
    AssistantMessage,
    FunctionCall,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from tests.session_worker import (
    INSTRUCTIONS,
    ORDER_ID,
    TOOLS,
    agent_for,
    all_accepted,
    message_texts,
    responder,
    run_worker,
    started,
    wait_for_file,
)
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio


def assert_own_messages_only(history: list[Message], session_id: str, others: list[str]
                             ) -> None:
    texts = message_texts(history)
    assert any(session_id in t for t in texts)
    for text in texts:
        for other in others:
            assert other == session_id or f"{other}-" not in text, (session_id, text)


async def test_a_long_chinese_conversation_reloads_exactly(tmp_path: Path) -> None:
    db = tmp_path / "support.db"
    prompts = [
        "你好，我想问几个问题。", "我的订单 A1024 到哪了？", "订单 B2048 呢？", "好的，谢谢。",
        "订单 C4096 是什么状态？", "能帮我查订单 D8192 吗？", "再问一下订单 E1 和运费。",
        "你们周末上班吗？", "订单 F77 到了没有？", "最后一个：订单 G5 呢？", "没问题了，再见！",
        "对了，订单 H6 还没发货？",
    ]
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = agent_for(client)
        for turn, prompt in enumerate(prompts):
            if turn == 5:  # k2-6 fails its retries once: that step is answered by k2-5
                sim.inject("kimi-k2-6", status=503, times=3)
            async with SQLiteSession("客户-42", db) as session:  # a new request, a new object
                result = await agent.run(prompt, session=session)
            assert result.status == "completed"
            async with SQLiteSession("客户-42", db) as reopened:
                assert await reopened.get_items() == result.messages
    async with SQLiteSession("客户-42", db) as session:
        history = await session.get_items()

    assert all_accepted(sim)
    answered = [r for r in sim.requests if r.ok]
    assistants = [m for m in history if isinstance(m, AssistantMessage)]
    assert len(assistants) == len(answered)
    assert [m.model for m in assistants] == [r.model for r in answered]
    assert {m.model for m in assistants} == {"kimi-k2-6", "kimi-k2-5"}
    assert [m.reasoning_content for m in assistants] == [r.reply.reasoning for r in answered
                                                         if r.reply]
    assert [c.id for m in assistants for c in m.tool_calls or ()] == [
        i for r in answered for i in r.tool_call_ids]
    # the last request carried the whole stored history (bar the answer it produced)
    last = sim.requests[-1]
    assert last.messages[0] == {"role": "system", "content": INSTRUCTIONS}
    assert last.messages[1:] == [m.to_wire() for m in history[:-1]]
    assert [m.content for m in history if isinstance(m, UserMessage)] == prompts
    final = history[-1]
    assert isinstance(final, AssistantMessage) and "H6" in final.text and "运输中" in final.text


async def test_two_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    db, logs = tmp_path / "shared.db", tmp_path / "logs"
    groups = {"A": ["PA0", "PA1", "PA2"], "B": ["PB0", "PB1", "PB2"]}
    everyone = groups["A"] + groups["B"]
    sim = GatewaySimulator(responder=responder)
    async with sim.serve() as url:
        reports: dict[str, dict[str, object]] = {}

        async def worker(name: str, sessions: list[str]) -> None:
            reports[name] = await run_worker(
                "chat", db, "--url", url, "--key", sim.api_key,
                "--sessions", ",".join(sessions), "--runs", "4", logs=logs)

        async with anyio.create_task_group() as group:
            for name, sessions in groups.items():
                group.start_soon(worker, name, sessions)
        assert reports["A"]["pid"] != reports["B"]["pid"] != os.getpid()
        # process B continues a conversation process A wrote
        await run_worker("chat", db, "--url", url, "--key", sim.api_key, "--sessions", "PA0",
                         "--runs", "2", logs=logs)
        async with GatewayClient(url, sim.api_key) as client, SQLiteStore(db) as store:
            result = await agent_for(client).run("最后问一下订单 PA0-9", session=store.session(
                "PA0"))
            assert result.status == "completed"
            histories = {s: await store.session(s).get_items() for s in everyone}
            assert sorted(await store.list_sessions()) == sorted(everyone)

    assert all_accepted(sim)
    for session_id, history in histories.items():
        assert_own_messages_only(history, session_id, everyone)
        runs = 4 + (3 if session_id == "PA0" else 0)
        assert len(history) == 4 * runs, session_id
        users = [m.content for m in history if isinstance(m, UserMessage)]
        orders = [ORDER_ID.search(str(u)).group() for u in users]  # type: ignore[union-attr]
        expected = [f"{session_id}-{i}" for i in range(4)]
        if session_id == "PA0":
            expected += ["PA0-0", "PA0-1", "PA0-9"]
        assert orders == expected


@pytest.mark.parametrize("shared_store", [True, False], ids=["one-store", "store-per-session"])
async def test_fifty_concurrent_sessions_on_one_file(tmp_path: Path, shared_store: bool) -> None:
    db = tmp_path / "many.db"
    ids = [f"S{k:02d}" for k in range(50)]
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client, SQLiteStore(db) as store:
        agent = agent_for(client)

        async def converse(session_id: str) -> None:
            session = store.session(session_id) if shared_store else SQLiteSession(session_id, db)
            try:
                for i in range(3):
                    prompt = f"第{i}问：订单 {session_id}-{i} 到哪了？（{session_id}）"
                    result = await agent.run(prompt, session=session)
                    assert result.status == "completed"
            finally:
                session.close()

        async with anyio.create_task_group() as group:
            for session_id in ids:
                group.start_soon(converse, session_id)

    assert all_accepted(sim)
    assert len(sim.requests) == 50 * 3 * 2
    async with SQLiteStore(db) as reader:
        for session_id in ids:
            history = await reader.session(session_id).get_items()
            assert len(history) == 12, session_id
            assert_own_messages_only(history, session_id, ids)
            answers = [m.text for m in history if isinstance(m, AssistantMessage) and m.text]
            assert [ORDER_ID.search(a).group() for a in answers] == [  # type: ignore[union-attr]
                f"{session_id}-{i}" for i in range(3)]


async def test_kill_9_mid_step_loses_only_the_step_in_flight(tmp_path: Path) -> None:
    db, ready = tmp_path / "crash.db", tmp_path / "ready"
    sim = GatewaySimulator(responder=responder)
    async with sim.serve() as url:
        async with started("block", db, "--url", url, "--key", sim.api_key, "--session", "c1",
                           "--ready", str(ready), logs=tmp_path / "logs") as worker:
            await wait_for_file(ready, worker)
            async with SQLiteSession("c1", db) as peek:  # readers never wait in WAL mode
                committed = await peek.get_items()
            os.kill(worker.pid, signal.SIGKILL)
            with anyio.fail_after(60):
                assert await worker.process.wait() == -signal.SIGKILL
        assert len(sim.requests) == 2, "the slow step's call was asked for, then the kill"

        async with SQLiteSession("c1", db) as session:
            survived = await session.get_items()
            assert survived == committed
            user, call, result = survived
            assert isinstance(user, UserMessage) and "A1024" in str(user.content)
            assert isinstance(call, AssistantMessage) and call.tool_calls
            assert [c.function.name for c in call.tool_calls] == ["get_order"]
            assert isinstance(result, ToolMessage) and result.tool_call_id == call.tool_calls[0].id
            assert "slow_lookup" not in str(survived), "the step in flight must be absent"

            async with GatewayClient(url, sim.api_key) as client:
                after = await agent_for(client).run("订单 A1024 到底到哪了？", session=session)
            assert after.status == "completed"
            assert await session.get_items() == after.messages
            assert len(after.messages) == 3 + 4
    assert all_accepted(sim)


async def test_kill_9_while_writing_never_leaves_half_a_step(tmp_path: Path) -> None:
    db, ready = tmp_path / "hammer.db", tmp_path / "ready"
    async with started("hammer", db, "--session", "h", "--ready", str(ready),
                       logs=tmp_path / "logs") as worker:
        await wait_for_file(ready, worker)
        os.kill(worker.pid, signal.SIGKILL)
        with anyio.fail_after(60):
            await worker.process.wait()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [row[0] for row in raw.execute(
            "SELECT seq FROM messages WHERE session_id = 'h' ORDER BY seq")]
    assert seqs == list(range(len(seqs)))
    async with SQLiteSession("h", db) as session:
        history = await session.get_items()
        assert len(history) >= 3 * 21 and len(history) % 3 == 0
        for step in range(len(history) // 3):
            first, middle, last = history[3 * step: 3 * step + 3]
            assert (first.content, middle.content, last.content) == (
                f"步骤 {step} 开始", f"步骤 {step} 中间", f"步骤 {step} 结束")
        await session.add_items([UserMessage(content="重启后继续")])
        assert len(await session.get_items()) == len(history) + 1


async def test_a_dangling_tool_call_left_by_a_crash_is_completed_as_interrupted(
        tmp_path: Path) -> None:
    db = tmp_path / "dangling.db"
    calls = [ToolCall(id="get_order:0", function=FunctionCall(
                 name="get_order", arguments='{"order_id":"A1024"}')),
             ToolCall(id="get_order:1", function=FunctionCall(
                 name="slow_lookup", arguments='{"order_id":"A1024"}'))]
    async with SQLiteSession("d", db) as session:  # what a crash mid-step could leave behind
        await session.add_items([
            UserMessage(content="订单 A1024 到哪了？仓库记录也查一下。"),
            AssistantMessage(reasoning_content="两个都查。", tool_calls=calls, model="kimi-k2-6"),
            ToolMessage(tool_call_id="get_order:0", content='{"状态":"运输中"}'),
        ])
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client, SQLiteSession("d", db) as session:
        result = await agent_for(client).run("还在吗？", session=session)
        history = await session.get_items()
    assert result.status == "completed" and all_accepted(sim)
    repaired = history[3]
    assert isinstance(repaired, ToolMessage)
    assert (repaired.tool_call_id, repaired.content) == ("get_order:1", INTERRUPTED_TEXT)
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool", "user", "assistant"]
    sent = sim.requests[0].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert sent[4] == {"role": "tool", "tool_call_id": "get_order:1", "content": INTERRUPTED_TEXT}


def test_run_sync_reuses_one_sqlite_session_across_event_loops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_sync` starts a new event loop per call; the session is not bound to any loop."""
    sim = GatewaySimulator(responder=responder)
    with sim.serve_in_thread() as url, SQLiteSession("sync", tmp_path / "sync.db") as session:
        monkeypatch.setenv("BYTESPIKE_BASE_URL", url)
        monkeypatch.setenv("BYTESPIKE_API_KEY", sim.api_key)
        agent = Agent(instructions=INSTRUCTIONS, tools=TOOLS)
        first = agent.run_sync("订单 A1 到哪了？", session=session)
        second = agent.run_sync("订单 B2 呢？", session=session)
        assert second.messages[:4] == first.messages
        assert len(anyio.run(session.get_items)) == 8
    assert all_accepted(sim)
