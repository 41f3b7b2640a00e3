"""`PostgresSession` / `RedisSession` (and the SQLite file lock) on real servers started by the
test fixtures: the `Session` protocol and its guarantees, state, windows, the conversation
lock inside one process, typed errors for a foreign schema or a server that is down, and a
server restarted mid-use losing nothing committed."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
import redis

from kimi_agent import PostgresSession, PostgresStore, RedisSession, RedisStore, SQLiteStore
from kimi_agent.errors import (
    ConversationBusyError,
    SessionError,
    SessionSchemaError,
    SessionStoreUnavailableError,
)
from kimi_agent.wire import AssistantMessage, UserMessage
from tests.test_sessions_sqlite import conversation, tool_step

pytestmark = pytest.mark.anyio

_ids = itertools.count()
STORES = ["sqlite", "postgres", "redis"]


@pytest.fixture
async def make_store(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[Callable[[], Any]]:
    """`make_store()` → a new store object on the same backing data (param picks the kind)."""
    kind = request.param
    made: list[Any] = []
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    url = ""
    if kind == "postgres":
        url = request.getfixturevalue("postgres_database")
    elif kind == "redis":
        url = request.getfixturevalue("redis_url")

    def make() -> Any:
        store: Any
        if kind == "sqlite":
            store = SQLiteStore(tmp_path / "support.db")
        elif kind == "postgres":
            store = PostgresStore(url)
        else:
            store = RedisStore(url, prefix=prefix, lock_ttl=2)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.aclose()


stores = pytest.mark.parametrize("make_store", STORES, indirect=True)


@stores
async def test_round_trip_is_exact_with_chinese_reasoning_ids_and_model(
        make_store: Callable[[], Any]) -> None:
    messages = conversation()
    first = make_store()
    await first.session("客户-42").add_items(messages[:2])
    await first.session("客户-42").add_items(messages[2:])
    loaded = await make_store().session("客户-42").get_items()
    assert loaded == messages
    step = loaded[2]
    assert isinstance(step, AssistantMessage) and step.tool_calls
    assert [c.id for c in step.tool_calls] == ["functions.get_order:0", "get_order:0"]
    assert step.reasoning_content == "用户问订单，要查两样东西。"
    assert step.model == "kimi-k2-6"
    assert step.tool_calls[0].model_extra == {"index": 0}
    assert [m.to_wire() for m in loaded] == [m.to_wire() for m in messages]


@stores
async def test_limit_since_pop_clear_and_listing(make_store: Callable[[], Any]) -> None:
    store = make_store()
    session = store.session("会话-甲")
    messages = conversation()
    await session.add_items(messages)
    assert await session.get_items(limit=2) == messages[-2:]
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=100) == messages
    assert await session.get_since(3) == messages[3:]
    assert await session.get_since(0) == messages
    assert await session.get_since(len(messages)) == []
    assert await session.pop_item() == messages[-1]
    await session.add_items([UserMessage(content="再问一句：运费多少？")])
    assert (await session.get_since(len(messages) - 1))[0].content == "再问一句：运费多少？"
    await store.session("会话-乙").add_items([UserMessage(content="你好")])
    assert sorted(await store.list_sessions()) == ["会话-乙", "会话-甲"]
    assert (await store.list_sessions())[0] == "会话-乙"  # most recently updated first
    await store.delete_session("会话-乙")
    assert await store.list_sessions() == ["会话-甲"]
    await session.clear_session()
    assert await session.get_items() == [] and await session.pop_item() is None
    assert await store.list_sessions() == []


@stores
async def test_state_values_survive_and_none_deletes(make_store: Callable[[], Any]) -> None:
    session = make_store().session("状态")
    await session.set_state("kimi_agent.approved_calls", {"call_1": {"决定": "批准"}})
    await session.set_state("kimi_agent.window_start", 4)
    again = make_store().session("状态")
    assert await again.get_state("kimi_agent.approved_calls") == {"call_1": {"决定": "批准"}}
    assert await again.get_all_state() == {
        "kimi_agent.approved_calls": {"call_1": {"决定": "批准"}}, "kimi_agent.window_start": 4}
    await again.set_state("kimi_agent.window_start", None)
    assert await session.get_state("kimi_agent.window_start") is None
    assert await session.get_state("没有") is None


@stores
async def test_bad_items_write_nothing(make_store: Callable[[], Any]) -> None:
    session = make_store().session("坏")
    with pytest.raises(SessionError, match="item 1"):
        await session.add_items([UserMessage(content="好"), {"role": "user"}])
    with pytest.raises(SessionError, match="sequence of messages"):
        await session.add_items(UserMessage(content="单条"))
    assert await session.get_items() == []


@stores
async def test_concurrent_writers_never_interleave_steps(make_store: Callable[[], Any]) -> None:
    store_a, store_b = make_store(), make_store()

    async def write(store: Any, who: str) -> None:
        for i in range(15):
            await store.session("并发").add_items(
                [UserMessage(content=f"{who}{i}问"), AssistantMessage(content=f"{who}{i}答")])

    async with anyio.create_task_group() as group:
        group.start_soon(write, store_a, "甲")
        group.start_soon(write, store_b, "乙")
    items = await store_a.session("并发").get_items()
    assert len(items) == 60
    for question, answer in zip(items[::2], items[1::2], strict=True):
        assert answer.text == str(question.content).replace("问", "答")


@stores
async def test_lock_excludes_a_second_holder_until_released(
        make_store: Callable[[], Any]) -> None:
    a, b = make_store().session("锁"), make_store().session("锁")
    async with a.lock(timeout=5):
        with pytest.raises(ConversationBusyError, match="busy"):
            async with b.lock(timeout=0.3):
                pass
        async with make_store().session("别的会话").lock(timeout=1):
            pass  # another conversation is not blocked
    async with b.lock(timeout=1):
        pass


@stores
async def test_lock_is_reentrant_for_its_holder_so_a_host_may_hold_it_around_a_run(
        make_store: Callable[[], Any]) -> None:
    from kimi_agent import Agent, GatewayClient
    from kimi_agent.testing import GatewaySimulator

    session, other = make_store().session("宿主持锁"), make_store().session("宿主持锁")
    sim = GatewaySimulator(responder=lambda request: "好的，收到。")
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        agent = Agent(instructions="你是客服助手。", client=client, busy_timeout=2)
        async with session.lock(timeout=2):
            async with session.lock(timeout=0.1):
                pass
            result = await agent.run("你好", session=session)  # the agent re-enters it
            assert result.output == "好的，收到。"
            with pytest.raises(ConversationBusyError):
                await Agent(instructions="你是客服助手。", client=client,
                            busy_timeout=0.3).run("插队", session=other)
        async with other.lock(timeout=1):
            pass  # released when the outermost block ended
    assert [m.content for m in await other.get_items()][-2:] == ["你好", "好的，收到。"]


async def test_redis_lock_renews_past_its_ttl_and_fences_a_lapsed_holder(
        redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    async with RedisStore(redis_url, prefix=prefix, lock_ttl=0.6) as store:
        a, b = store.session("续期"), store.session("续期")
        async with a.lock(timeout=1) as token:
            await anyio.sleep(1.5)  # longer than the ttl: renewal keeps it held
            with pytest.raises(ConversationBusyError):
                async with b.lock(timeout=0.2):
                    pass
            await a.add_items([UserMessage(content="持锁时写入")])
        async with b.lock(timeout=1) as later:
            assert later > token
        # A holder whose lock was taken over cannot write any more.
        client = redis.asyncio.Redis.from_url(redis_url)
        async with a.lock(timeout=1):
            await client.set(f"{prefix}lock:续期", b"someone-else:999")
            with pytest.raises(ConversationBusyError, match="expired"):
                await a.add_items([UserMessage(content="不该写入")])
        await client.aclose()
        assert [m.content for m in await a.get_items()] == ["持锁时写入"]


async def test_postgres_lock_lost_with_its_connection_fences_further_writes(
        postgres_database: str) -> None:
    async with PostgresStore(postgres_database) as store:
        session = store.session("断线")
        async with session.lock(timeout=5):
            await session.add_items([UserMessage(content="持锁时写入")])
            async with await psycopg.AsyncConnection.connect(postgres_database,
                                                             autocommit=True) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())")
            with pytest.raises(ConversationBusyError, match="lost"):
                await session.add_items([UserMessage(content="不该写入")])
            with pytest.raises(ConversationBusyError, match="lost"):
                await session.set_state("kimi_agent.window_start", 1)
            async with store.session("断线").lock(timeout=1):
                pass  # the lock went with the connection
        assert [m.content for m in await session.get_items()] == ["持锁时写入"]
        await session.set_state("kimi_agent.window_start", 1)  # not holding: no check


async def test_postgres_foreign_and_newer_schemas_are_refused(postgres_database: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_database, autocommit=True) as c:
        await c.execute("CREATE TABLE kimi_agent_messages (id int)")
    with pytest.raises(SessionSchemaError, match="not kimi-agent's"):
        await PostgresSession("x", postgres_database).get_items()
    async with await psycopg.AsyncConnection.connect(postgres_database, autocommit=True) as c:
        await c.execute("DROP TABLE kimi_agent_messages")
    async with PostgresStore(postgres_database) as store:
        await store.list_sessions()  # creates the schema
    async with await psycopg.AsyncConnection.connect(postgres_database, autocommit=True) as c:
        await c.execute("UPDATE kimi_agent_schema SET version = 99")
    async with PostgresStore(postgres_database) as store:
        with pytest.raises(SessionSchemaError, match="newer"):
            await store.list_sessions()


async def test_redis_foreign_and_newer_layouts_are_refused(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.set("foreign:schema", "somebody else's")
    await client.set("newer:schema", "kimi-agent sessions v7")
    await client.aclose()
    with pytest.raises(SessionSchemaError, match="something else"):
        await RedisSession("x", redis_url, prefix="foreign:").get_items()
    with pytest.raises(SessionSchemaError, match="upgrade"):
        await RedisSession("x", redis_url, prefix="newer:").get_items()


async def test_bad_urls_and_arguments_are_typed_errors() -> None:
    with pytest.raises(SessionError, match="postgresql://"):
        PostgresStore("mysql://x")
    with pytest.raises(SessionError, match="redis://"):
        RedisStore("http://x")
    with pytest.raises(SessionError, match="exactly one"):
        RedisSession("x")
    with pytest.raises(SessionError, match="non-empty"):
        PostgresSession("", "postgresql://x@127.0.0.1/db")
    with pytest.raises(SessionError, match="NUL"):
        PostgresSession("a\x00b", "postgresql://x@127.0.0.1/db")


async def test_postgres_restart_mid_use_is_typed_and_loses_nothing(
        make_postgres_server: Callable[[], Any]) -> None:
    server = make_postgres_server()
    async with PostgresStore(server.url(), timeout=2) as store:
        session = store.session("重启")
        await session.add_items(conversation())
        server.crash()
        with pytest.raises(SessionStoreUnavailableError, match="PostgreSQL"):
            await session.add_items([UserMessage(content="服务器宕机时")])
        with pytest.raises(SessionStoreUnavailableError):
            await session.get_items()
        server.start()
        assert await session.get_items() == conversation()
        await session.add_items(tool_step())
        assert await session.get_items() == [*conversation(), *tool_step()]


async def test_redis_restart_mid_use_is_typed_and_loses_nothing(
        make_redis_server: Callable[..., Any]) -> None:
    server = make_redis_server(persistent=True)
    async with RedisStore(server.url, timeout=2) as store:
        session = store.session("重启")
        await session.add_items(conversation())
        server.crash()
        with pytest.raises(SessionStoreUnavailableError, match="Redis"):
            await session.add_items([UserMessage(content="服务器宕机时")])
        server.start()
        assert await session.get_items() == conversation()
        await session.add_items(tool_step())
        assert await session.get_items() == [*conversation(), *tool_step()]


async def test_importing_kimi_agent_does_not_import_the_drivers() -> None:
    code = ("import sys, kimi_agent, kimi_agent.sessions, kimi_agent.scale; "
            "assert not {'psycopg', 'redis', 'psycopg_pool'} & set(sys.modules), sys.modules")
    process = await anyio.run_process([__import__("sys").executable, "-c", code], check=False)
    assert process.returncode == 0, process.stderr.decode()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_any_text_reasoning_and_ids_round_trip(kind: str, request: pytest.FixtureRequest
                                               ) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from kimi_agent.wire import ToolCall, ToolMessage

    url: str = request.getfixturevalue("postgres_database" if kind == "postgres"
                                       else "redis_url")

    async def round_trip(texts: list[str], call_id: str) -> None:
        store: Any = (PostgresStore(url) if kind == "postgres"
                      else RedisStore(url, prefix=f"h{uuid.uuid4().hex[:8]}:"))
        async with store:
            name = f"随机-{next(_ids)}-{texts[0][:20]}"
            if kind == "postgres":  # PostgreSQL text cannot hold NUL: refused up front
                with pytest.raises(SessionError, match="NUL"):
                    store.session(name + "\x00")
                name = name.replace("\x00", "")
            session = store.session(name)
            call = ToolCall.model_validate({"id": call_id, "function": {
                "name": "查询", "arguments": dumps_args(texts[0])}})
            messages = [UserMessage(content=text) for text in texts] + [
                AssistantMessage(content=texts[-1], reasoning_content=texts[0],
                                 tool_calls=[call], model="kimi-k2-6"),
                ToolMessage(tool_call_id=call_id, content=texts[-1])]
            await session.add_items(messages)
            assert await session.get_items() == messages
            assert await session.get_since(len(texts)) == messages[len(texts):]

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(texts=st.lists(st.text(max_size=80), min_size=1, max_size=4),
           call_id=st.text(min_size=1, max_size=40))
    def check(texts: list[str], call_id: str) -> None:
        anyio.run(round_trip, texts, call_id)

    check()


def dumps_args(text: str) -> str:
    import json

    return json.dumps({"查询": text}, ensure_ascii=False)
