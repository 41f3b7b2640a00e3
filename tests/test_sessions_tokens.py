"""Token estimates stored with the messages, and the request body joined from cached bytes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kimi_agent import Agent, tool
from kimi_agent.sessions import (
    MemorySession,
    SQLiteSession,
    TokenCountedSession,
    message_tokens,
)
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.wire import (
    AssistantMessage,
    FunctionCall,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
    dumps,
)
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio


def conversation(n_turns: int) -> list[Message]:
    items: list[Message] = []
    for i in range(n_turns):
        call = ToolCall(id=f"get_order:{i}",
                        function=FunctionCall(name="get_order", arguments=f'{{"order_id":"A{i}"}}'))
        items += [UserMessage(content=f"订单 A{i} 到哪了？"),
                  AssistantMessage(reasoning_content="查询订单", tool_calls=[call],
                                   model="kimi-k2-6"),
                  ToolMessage(tool_call_id=call.id, content=f'{{"订单":"A{i}","状态":"运输中"}}'),
                  AssistantMessage(content=f"订单 A{i} 正在运输中。", model="kimi-k2-6")]
    return items


@tool
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号。
    """
    return {"订单": order_id, "状态": "运输中"}


def shop(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="订单正在运输中。")
    return Reply(reasoning="查询订单", tool_calls=[("get_order", {"order_id": "A1024"})])


async def test_memory_session_returns_each_message_with_its_estimate() -> None:
    items = conversation(3)
    session = MemorySession("顾客", items[:4])
    assert isinstance(session, TokenCountedSession)
    await session.add_items(items[4:])
    pairs = await session.get_since_with_tokens(2)
    assert [m for m, _ in pairs] == items[2:]
    assert [t for _, t in pairs] == [message_tokens(m) for m in items[2:]]
    assert await session.pop_item() is items[-1]
    assert len(await session.get_since_with_tokens(0)) == len(items) - 1
    await session.clear_session()
    assert await session.get_since_with_tokens(0) == []


async def test_sqlite_stores_the_estimate_with_each_message(tmp_path: Path) -> None:
    items = conversation(2)
    async with SQLiteSession("顾客", tmp_path / "s.db") as session:
        assert isinstance(session, TokenCountedSession)
        await session.add_items(items)
        pairs = await session.get_since_with_tokens(1)
    assert [m.model_dump() for m, _ in pairs] == [m.model_dump() for m in items[1:]]
    with sqlite3.connect(tmp_path / "s.db") as db:
        stored = [row[0] for row in db.execute("SELECT tokens FROM messages ORDER BY seq")]
    assert stored == [message_tokens(m) for m in items]
    assert [t for _, t in pairs] == stored[1:]


async def test_an_older_file_gains_the_column_and_its_rows_are_estimated_when_read(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    items = conversation(2)
    with sqlite3.connect(path) as db:       # the schema as kimi-agent wrote it before
        db.executescript("""
            CREATE TABLE sessions (session_id TEXT PRIMARY KEY, created_at TEXT NOT NULL,
                                   updated_at TEXT NOT NULL);
            CREATE TABLE messages (session_id TEXT NOT NULL REFERENCES sessions (session_id),
                seq INTEGER NOT NULL, role TEXT NOT NULL, json TEXT NOT NULL,
                created_at TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
            CREATE TABLE session_state (session_id TEXT NOT NULL, key TEXT NOT NULL,
                json TEXT NOT NULL, PRIMARY KEY (session_id, key)) WITHOUT ROWID;
            PRAGMA user_version = 2;
            INSERT INTO sessions VALUES ('老顾客', 'then', 'then');
        """)
        db.executemany("INSERT INTO messages VALUES ('老顾客', ?, ?, ?, 'then')", [
            (i, m.role, dumps(m.model_dump(mode="json", exclude_none=True)))
            for i, m in enumerate(items)])
    sim = GatewaySimulator(responder=shop)
    async with sim_client(sim) as client, SQLiteSession("老顾客", path) as session:
        pairs = await session.get_since_with_tokens(0)
        assert [t for _, t in pairs] == [message_tokens(m) for m in items]
        result = await Agent(tools=[get_order], client=client).run("还有订单 A1024 呢？",
                                                                   session=session)
        assert result.output == "订单正在运输中。"
        assert len(await session.get_items()) == len(items) + 4
    with sqlite3.connect(path) as db:
        tokens = [row[0] for row in db.execute("SELECT tokens FROM messages ORDER BY seq")]
    assert tokens[:len(items)] == [None] * len(items), "old rows are left as they were"
    assert all(isinstance(t, int) and t > 0 for t in tokens[len(items):])


class Ticket(BaseModel):
    category: str
    summary: str


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["kimi-k2-6", "kimi-k2-5"])
async def test_the_body_is_exactly_the_compact_json_of_the_request(stream: bool,
                                                                   model: str) -> None:
    answer = json.dumps({"category": "物流", "summary": "包裹三天未更新"}, ensure_ascii=False)

    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return Reply(text=answer)
        return Reply(reasoning="先查订单", tool_calls=[("get_order", {"order_id": "A1024"})])

    sim = GatewaySimulator(responder=responder)
    session = MemorySession("顾客", conversation(3))
    async with sim_client(sim) as client:
        agent = Agent(model=model, fallback=None, tools=[get_order], client=client,
                      output_type=Ticket, instructions="把客户的问题整理成工单。")
        if stream:
            async with agent.stream("我的包裹三天没动了", session=session) as run:
                async for _ in run:
                    pass
        else:
            await agent.run("我的包裹三天没动了", session=session)
    assert len(sim.requests) == 2
    for request in sim.requests:
        assert request.raw_body == dumps(request.body).encode()
        assert list(request.body)[:3] == ["model", "messages", "max_tokens"]
    first, second = (r.raw_body for r in sim.requests)
    prefix = first[:first.index(b'"max_tokens"')].rstrip(b"],")
    assert second.startswith(prefix), "the prompt prefix stays byte-stable between steps"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
                min_size=1, max_size=6))
def test_stored_estimates_are_the_estimates_of_the_messages(texts: list[str]) -> None:
    import anyio

    items: list[Message] = [UserMessage(content=t) for t in texts]

    async def check() -> None:
        async with SQLiteSession("随机") as session:
            await session.add_items(items)
            pairs = await session.get_since_with_tokens(0)
        assert [t for _, t in pairs] == [message_tokens(m) for m in items]
        memory = MemorySession("随机", items)
        assert [t for _, t in await memory.get_since_with_tokens(0)] == [t for _, t in pairs]

    anyio.run(check)
