"""Scaling out, with real replica processes on real servers: one run per conversation across
processes on SQLite, PostgreSQL and Redis (no interleaving; a held conversation is busy; a
replica killed with SIGKILL frees it), 50 conversations × 3 replicas, an approval resumed on
another replica, and the gateway's concurrency cap held by a shared limiter across 3 replicas
with 100 conversations, measured at the simulator."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_agent.cli._sessions import open_store
from kimi_agent.scale import PostgresLimiter, RedisLimiter
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.wire import AssistantMessage, Message, ToolMessage, UserMessage
from tests.replica_worker import run_replica, started
from tests.session_worker import ORDER_ID, all_accepted, responder, wait_for_file

pytestmark = pytest.mark.anyio


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of the kind the param names, empty and private to the test."""
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'replicas.db'}"
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        return url
    redis_url: str = request.getfixturevalue("redis_url")
    return f"{redis_url}?prefix=t{uuid.uuid4().hex[:8]}:"


def every_store(*kinds: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("store_url", kinds or ("sqlite", "postgres", "redis"),
                                   indirect=True)


class Counting:
    """The session tests' responder, slowed down, counting the requests it is answering at
    once (the in-flight count at the simulator)."""

    def __init__(self, hold: float = 0.05) -> None:
        self.hold = hold
        self.now = 0
        self.most = 0

    async def __call__(self, request: SimRequest) -> Reply:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await anyio.sleep(self.hold)
            return responder(request)
        finally:
            self.now -= 1


async def history(url: str, session_id: str) -> list[Message]:
    store = open_store(url)
    try:
        items: list[Message] = await store.session(session_id).get_items()
        return items
    finally:
        await store.aclose()


def runs_of(items: list[Message]) -> list[list[Message]]:
    """A history cut into runs, each starting at a user message."""
    runs: list[list[Message]] = []
    for message in items:
        if isinstance(message, UserMessage):
            runs.append([])
        runs[-1].append(message)
    return runs


def assert_runs_whole(items: list[Message], session_id: str) -> list[str]:
    """Every run is user (of this session) → get_order call → its result → answer about that
    same order, never mixed with another run's messages; returns the runs' order ids."""
    orders = []
    for run in runs_of(items):
        user, call, result, answer = run
        assert f"（会话 {session_id}，" in str(user.content)
        order = ORDER_ID.search(str(user.content))
        assert order is not None
        assert isinstance(call, AssistantMessage) and call.tool_calls
        assert order.group() in call.tool_calls[0].function.arguments
        assert isinstance(result, ToolMessage) and result.tool_call_id == call.tool_calls[0].id
        assert order.group() in result.content
        assert isinstance(answer, AssistantMessage) and order.group() in answer.text
        orders.append(order.group())
    return orders


@every_store()
async def test_two_replicas_on_one_conversation_take_turns(store_url: str, tmp_path: Path
                                                           ) -> None:
    sim = GatewaySimulator(responder=Counting())
    async with sim.serve() as url:
        reports: dict[str, Any] = {}

        async def replica(tag: str) -> None:
            reports[tag] = await run_replica(
                "chat", store_url, "--url", url, "--key", sim.api_key, "--sessions", "同一位客户",
                "--runs", "4", "--tag", tag, logs=tmp_path / "logs")

        async with anyio.create_task_group() as group:
            group.start_soon(replica, "A")
            group.start_soon(replica, "B")
    assert all_accepted(sim)
    assert reports["A"]["done"] == reports["B"]["done"] == {"同一位客户": 4}
    orders = assert_runs_whole(await history(store_url, "同一位客户"), "同一位客户")
    assert sorted(orders) == sorted(f"{t}{i}" for t in "AB" for i in range(4))


@every_store()
async def test_a_held_conversation_is_busy_until_its_replica_is_killed(
        store_url: str, tmp_path: Path) -> None:
    ready, logs = tmp_path / "ready", tmp_path / "logs"
    if store_url.startswith("redis"):
        store_url += "&lock_ttl=3"  # a killed replica's lock expires after 3 s (default 30)
    sim = GatewaySimulator(responder=responder)
    async with sim.serve() as url:
        async with started("block", store_url, "--url", url, "--key", sim.api_key,
                           "--session", "被占用", "--ready", str(ready), logs=logs) as holder:
            await wait_for_file(ready, holder)
            waited = await run_replica("chat", store_url, "--url", url, "--key", sim.api_key,
                                       "--sessions", "被占用", "--busy-timeout", "1",
                                       "--tag", "W", logs=logs)
            assert waited["busy"] == ["被占用"] and waited["done"] == {}
            os.kill(holder.pid, signal.SIGKILL)
            with anyio.fail_after(60):
                assert await holder.process.wait() == -signal.SIGKILL
        # The lock went with the process (file lock, connection) or expires (Redis, 3 s).
        after = await run_replica("chat", store_url, "--url", url, "--key", sim.api_key,
                                  "--sessions", "被占用", "--busy-timeout", "60", "--tag", "N",
                                  logs=logs)
    assert after["done"] == {"被占用": 1}
    items = await history(store_url, "被占用")
    user, call, result = items[:3]  # the killed run's committed first step
    assert "慢查" in str(user.content) and isinstance(result, ToolMessage)
    assert isinstance(call, AssistantMessage) and call.tool_calls
    assert "slow_lookup" not in str(items), "the step in flight when killed is absent"
    assert assert_runs_whole(items[3:], "被占用") == ["N0"]
    assert all_accepted(sim)


@every_store("postgres", "redis")
async def test_fifty_conversations_on_three_replicas(store_url: str, tmp_path: Path) -> None:
    sessions = [f"客户{i:02d}" for i in range(50)]
    sim = GatewaySimulator(responder=Counting(hold=0.01))
    async with sim.serve() as url:
        reports: dict[str, Any] = {}

        async def replica(tag: str) -> None:
            reports[tag] = await run_replica(
                "chat", store_url, "--url", url, "--key", sim.api_key,
                "--sessions", ",".join(sessions), "--tag", tag, logs=tmp_path / "logs",
                timeout=600)

        async with anyio.create_task_group() as group:
            for tag in "ABC":
                group.start_soon(replica, tag)
    assert all_accepted(sim)
    assert len({r["pid"] for r in reports.values()}) == 3
    store = open_store(store_url)
    try:
        assert sorted(await store.list_sessions()) == sessions
    finally:
        await store.aclose()
    for session_id in sessions:
        orders = assert_runs_whole(await history(store_url, session_id), session_id)
        assert sorted(orders) == [f"{t}0" for t in "ABC"]


@every_store("postgres", "redis")
async def test_an_approval_is_resumed_on_another_replica(store_url: str, tmp_path: Path
                                                         ) -> None:
    logs = tmp_path / "logs"
    sim = GatewaySimulator(responder=responder)
    async with sim.serve() as url:
        asked = await run_replica("ask-refund", store_url, "--url", url, "--key", sim.api_key,
                                  "--session", "退款客户", "--order", "B2048", logs=logs)
        assert asked["status"] == "pending_approval" and len(asked["pending"]) == 1
        resumed = await run_replica("resume", store_url, "--url", url, "--key", sim.api_key,
                                    "--session", "退款客户", "--approve", asked["pending"][0],
                                    logs=logs)
    assert resumed["pid"] != asked["pid"]
    assert resumed["status"] == "completed"
    [(call_id, name, status, result)] = resumed["calls"]
    assert (call_id, name, status) == (asked["pending"][0], "refund", "ok")
    assert f"进程 {resumed['pid']}" in result and "B2048" in result
    items = await history(store_url, "退款客户")
    refunds = [m for m in items if isinstance(m, ToolMessage) and "退款成功" in m.content]
    assert len(refunds) == 1, "the approved call ran exactly once"
    assert all_accepted(sim)


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_a_shared_limiter_holds_the_cap_across_three_replicas(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    limiter_url: str = request.getfixturevalue(
        "redis_url" if kind == "redis" else "postgres_database")
    store_url = f"sqlite:///{tmp_path / 'capped.db'}"
    counting = Counting(hold=0.1)
    sim = GatewaySimulator(responder=counting)
    conversations = [f"会话{i:03d}" for i in range(100)]
    shares = [conversations[0::3], conversations[1::3], conversations[2::3]]
    async with sim.serve() as url:
        reports: list[Any] = []

        async def replica(tag: str, share: list[str]) -> None:
            reports.append(await run_replica(
                "chat", store_url, "--url", url, "--key", sim.api_key,
                "--sessions", ",".join(share), "--tag", tag, "--limiter", kind,
                "--limiter-url", limiter_url, "--limit", "5", logs=tmp_path / "logs",
                timeout=600))

        async with anyio.create_task_group() as group:
            for tag, share in zip("ABC", shares, strict=True):
                group.start_soon(replica, tag, share)
    assert all_accepted(sim)
    assert sum(len(r["done"]) for r in reports) == 100
    assert len(sim.requests) == 200
    assert counting.most <= 5, f"{counting.most} requests in flight at once"
    assert counting.most == 5, "the replicas together used the whole cap"
    limiter = make_limiter(kind, limiter_url, 5)
    async with limiter:
        assert await limiter.in_flight() == 0, "every slot was given back"


def make_limiter(kind: str, url: str, limit: int, key: str = "bytespike-account",
                 **options: Any) -> Any:
    cls: Any = RedisLimiter if kind == "redis" else PostgresLimiter
    return cls(url, key, limit, **options)


HOLD_AND_HANG = """
import sys, anyio
from kimi_agent.scale import RedisLimiter, PostgresLimiter
async def main():
    cls = RedisLimiter if sys.argv[1] == "redis" else PostgresLimiter
    limiter = cls(sys.argv[2], "crashy", 1, ttl=1.0)
    async with limiter.slot():
        print("holding", flush=True)
        await anyio.sleep(3600)
anyio.run(main)
"""


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_a_crashed_holders_slot_comes_back_and_waiters_are_served_in_order(
        kind: str, request: pytest.FixtureRequest) -> None:
    url: str = request.getfixturevalue("redis_url" if kind == "redis" else "postgres_database")
    process = await anyio.open_process([sys.executable, "-c", HOLD_AND_HANG, kind, url])
    try:
        assert process.stdout is not None
        with anyio.fail_after(60):
            assert b"holding" in await process.stdout.receive()
        process.kill()
        await process.wait()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
    granted: list[int] = []
    async with make_limiter(kind, url, 1, "crashy", ttl=1.0, poll=0.02) as limiter:

        async def waiter(n: int) -> None:
            async with limiter.slot():
                granted.append(n)
                await anyio.sleep(0.05)

        with anyio.fail_after(60):  # the dead holder's slot expires after its 1 s ttl
            async with anyio.create_task_group() as group:
                for n in range(5):
                    group.start_soon(waiter, n)
                    await anyio.sleep(0.3)  # arrive one after another
    assert granted == [0, 1, 2, 3, 4]


async def test_limiter_arguments_are_checked() -> None:
    from kimi_agent.errors import ConfigurationError

    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigurationError, match="positive integer"):
            RedisLimiter("redis://127.0.0.1:1/0", "k", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ttl"):
        PostgresLimiter("postgresql://x@127.0.0.1/db", "k", 5, ttl=0.1)
    with pytest.raises(ConfigurationError, match="key"):
        PostgresLimiter("postgresql://x@127.0.0.1/db", "", 5)



@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_a_server_restarted_mid_run_is_a_typed_error_and_loses_nothing(
        kind: str, request: pytest.FixtureRequest) -> None:
    from kimi_agent import Agent, GatewayClient, PostgresStore, RedisStore, tool
    from kimi_agent.errors import SessionStoreUnavailableError

    if kind == "postgres":
        server = request.getfixturevalue("make_postgres_server")()
        store: Any = PostgresStore(server.url(), timeout=2)
    else:
        server = request.getfixturevalue("make_redis_server")(persistent=True)
        store = RedisStore(server.url, timeout=2, lock_ttl=2)  # the lock outlives the restart

    crash = {"now": False}

    @tool
    def get_order(order_id: str) -> dict[str, str]:
        """查询订单状态。

        Args:
            order_id: 订单号。
        """
        if crash["now"]:
            server.crash()
        return {"order_id": order_id, "状态": "运输中"}

    sim = GatewaySimulator(responder=responder)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client, store:
        agent = Agent(instructions="你是客服助手。", tools=[get_order], client=client)
        session = store.session("重启中的客户")
        first = await agent.run("订单 A1024 到哪了？", session=session)
        assert first.status == "completed"
        before = await session.get_items()
        crash["now"] = True
        with pytest.raises(SessionStoreUnavailableError):
            await agent.run("订单 B2048 呢？", session=session)
        crash["now"] = False
        server.start()
        after = await session.get_items()
        assert after[:len(before)] == before, "nothing committed was lost"
        assert not any("B2048" in str(m) for m in after[len(before):]
                       if isinstance(m, ToolMessage)), "the step in flight is not half-stored"
        again = await agent.run("订单 B2048 到底到哪了？", session=session)
        assert again.status == "completed" and "B2048" in again.output
        final = await session.get_items()
        assert final[:len(before)] == before and final[-1].text == again.output
