"""`SQLiteSession` and `SQLiteStore` on their own: the `Session` protocol, what a stored
message keeps, transactions, bad input, the file's settings and the lifecycle."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

import kimi_agent
from kimi_agent import sessions
from kimi_agent.errors import SessionError
from kimi_agent.sessions._sqlite import SCHEMA_VERSION, SQLiteSession, SQLiteStore
from kimi_agent.wire import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
    parse_message,
)

pytestmark = pytest.mark.anyio


def tool_step() -> list[Message]:
    """A step as Kimi sends it: opaque ids, reasoning, Chinese arguments, an extra `index`."""
    calls = [
        ToolCall.model_validate({"id": "functions.get_order:0", "index": 0, "function": {
            "name": "get_order", "arguments": '{"order_id":"A1024"}'}}),
        ToolCall.model_validate({"id": "get_order:0", "index": 1, "function": {
            "name": "search_faq", "arguments": '{"query":"退货 政策"}'}}),
    ]
    return [
        AssistantMessage(content="我先查一下。", reasoning_content="用户问订单，要查两样东西。",
                         tool_calls=calls, model="kimi-k2-6"),
        ToolMessage(tool_call_id="functions.get_order:0", content='{"状态":"运输中"}'),
        ToolMessage(tool_call_id="get_order:0", content="七天无理由退货。"),
    ]


def conversation() -> list[Message]:
    return [
        SystemMessage(content="你是一名耐心的客服助手。"),
        UserMessage(content="我的订单 A1024 到哪了？"),
        *tool_step(),
        AssistantMessage(content="您的订单正在运输中 🚚，预计明天送达。",
                         reasoning_content="整理结果。", model="kimi-k2-5"),
    ]


async def test_round_trip_keeps_everything_the_wire_needs(tmp_path: Path) -> None:
    messages = conversation()
    async with SQLiteSession("客户-42", tmp_path / "support.db") as session:
        await session.add_items(messages)
    async with SQLiteSession("客户-42", str(tmp_path / "support.db")) as reopened:
        loaded = await reopened.get_items()
    assert loaded == messages
    step = loaded[2]
    assert isinstance(step, AssistantMessage) and step.tool_calls
    assert [c.id for c in step.tool_calls] == ["functions.get_order:0", "get_order:0"]
    assert step.reasoning_content == "用户问订单，要查两样东西。"
    assert step.model == "kimi-k2-6"
    assert step.tool_calls[0].model_extra == {"index": 0}
    assert loaded[-1].to_wire() == messages[-1].to_wire()


async def test_json_is_stored_readable_with_chinese_intact(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SQLiteSession("s", path) as session:
        await session.add_items(conversation())
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq, role, json FROM messages ORDER BY seq").fetchall()
        assert db.execute("SELECT session_id FROM sessions").fetchall() == [("s",)]
    assert [r[0] for r in rows] == list(range(6))
    assert [r[1] for r in rows] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert "我的订单 A1024 到哪了？" in rows[1][2] and "\\u" not in rows[1][2]
    assert '"model":"kimi-k2-5"' in rows[-1][2]


async def test_limit_pop_and_clear() -> None:
    session = SQLiteSession("c")
    messages = conversation()
    await session.add_items(messages[:3])
    await session.add_items(messages[3:])
    assert await session.get_items(limit=2) == messages[-2:]
    assert await session.get_items(limit=100) == messages
    assert await session.get_items(limit=0) == []
    assert await session.pop_item() == messages[-1]
    assert await session.get_items() == messages[:-1]
    await session.add_items([UserMessage(content="还在吗？")])
    assert (await session.get_items())[-1] == UserMessage(content="还在吗？")
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    session.close()


async def test_sessions_of_one_store_are_separate_and_listed(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "shop.db") as store:
        a, b = store.session("张三"), store.session("李四")
        await a.add_items([UserMessage(content="我是张三")])
        await b.add_items([UserMessage(content="我是李四")])
        await a.add_items([UserMessage(content="张三又来了")])
        assert [m.content for m in await a.get_items()] == ["我是张三", "张三又来了"]
        assert [m.content for m in await b.get_items()] == ["我是李四"]
        assert await store.list_sessions() == ["张三", "李四"]
        a.close()  # a borrowed store stays open
        await store.delete_session("张三")
        assert await store.list_sessions() == ["李四"]
        assert await a.get_items() == []
        assert await b.get_items() != []


async def test_add_items_is_all_or_nothing_on_bad_input() -> None:
    session = SQLiteSession("bad")
    await session.add_items([UserMessage(content="第一条")])
    with pytest.raises(SessionError, match=r"item 1 is a dict, not a message"):
        await session.add_items([UserMessage(content="第二条"), {"role": "user", "content": "x"}])  # type: ignore[list-item]
    with pytest.raises(SessionError, match=r"not a UserMessage: wrap a single message"):
        await session.add_items(UserMessage(content="单条"))  # type: ignore[arg-type]
    with pytest.raises(SessionError, match=r"not a str"):
        await session.add_items("你好")  # type: ignore[arg-type]
    assert [m.content for m in await session.get_items()] == ["第一条"]
    await session.add_items([])
    assert len(await session.get_items()) == 1


async def test_a_failing_transaction_rolls_back_and_the_store_stays_usable(
        tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    session = SQLiteSession("t", path)
    await session.add_items([UserMessage(content="保留")])
    with sqlite3.connect(path) as db:  # a trigger that refuses the third message of a step
        db.execute("CREATE TRIGGER no_third BEFORE INSERT ON messages WHEN NEW.seq = 3 "
                   "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    with pytest.raises(SessionError, match="disk says no"):
        await session.add_items([UserMessage(content="一"), UserMessage(content="二"),
                                 UserMessage(content="三")])
    assert [m.content for m in await session.get_items()] == ["保留"]
    await session.add_items([UserMessage(content="一")])
    assert len(await session.get_items()) == 2
    session.close()


async def test_a_corrupt_row_is_a_clear_session_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with SQLiteSession("c", path) as session:
        await session.add_items([UserMessage(content="好")])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET json = '{\"role\": \"robot\"}'")
    async with SQLiteSession("c", path) as session:
        with pytest.raises(SessionError, match=r"message 0 of session 'c' is not a valid"):
            await session.get_items()


async def test_file_settings_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with SQLiteSession("w", path, timeout=5) as session:
        await session.add_items([UserMessage(content="hi")])
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in db.execute("PRAGMA table_info(messages)")]
        assert columns == ["session_id", "seq", "role", "json", "created_at", "tokens"]
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SessionError, match="newer than this kimi-agent understands"):
        async with SQLiteSession("w", path) as session:
            await session.get_items()


async def test_closed_sessions_and_bad_paths_fail_clearly(tmp_path: Path) -> None:
    session = SQLiteSession("x", tmp_path / "x.db")
    await session.add_items([UserMessage(content="hi")])
    session.close()
    session.close()
    with pytest.raises(SessionError, match="is closed"):
        await session.get_items()
    missing = SQLiteSession("x", tmp_path / "no-such-dir" / "x.db")
    with pytest.raises(SessionError, match="unable to open database file"):
        await missing.get_items()
    with pytest.raises(SessionError, match="non-empty str"):
        SQLiteSession("")
    with pytest.raises(ValueError, match="either a path or a store"):
        SQLiteSession("x", "a.db", store=SQLiteStore())


async def test_memory_sessions_are_private() -> None:
    async with SQLiteSession("same-id") as a, SQLiteSession("same-id") as b:
        await a.add_items([UserMessage(content="只在 a 里")])
        assert await b.get_items() == []
        assert a.path == ":memory:"


async def test_one_session_object_shared_by_concurrent_tasks() -> None:
    session = SQLiteSession("shared")
    async with anyio.create_task_group() as group:
        for i in range(40):
            step: list[Message] = [UserMessage(content=f"问{i}"),
                                   AssistantMessage(content=f"答{i}")]
            group.start_soon(session.add_items, step)
    items = await session.get_items()
    session.close()
    assert len(items) == 80
    for question, answer in zip(items[::2], items[1::2], strict=True):
        assert answer.content == "答" + str(question.content)[1:], "a step was interleaved"


def test_exported_lazily_and_satisfies_the_protocol() -> None:
    assert kimi_agent.SQLiteSession is SQLiteSession
    assert sessions.SQLiteSession is SQLiteSession
    assert isinstance(SQLiteSession("p"), sessions.Session)
    assert parse_message({"role": "user", "content": "x"}) == UserMessage(content="x")
