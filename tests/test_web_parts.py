"""kimi_agent.web's parts on their own: customer tokens, rate limits, options, the session
lock seam, and shutdown that lets runs finish."""

from __future__ import annotations

import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_agent import Agent, GatewayClient, MemorySession
from kimi_agent.errors import ConfigurationError, KimiAgentError
from kimi_agent.testing import GatewaySimulator, Latency, Reply
from kimi_agent.web import (
    ChatService,
    Customer,
    RateLimit,
    TokenError,
    WebOptions,
    create_app,
    mint_customer_token,
    verify_customer_token,
)
from kimi_agent.web._limits import RateLimiter
from tests.webkit import SECRET, STAFF_KEY, customer_headers, say, serve

pytestmark = pytest.mark.timeout(60)

IDS = st.text(string.ascii_letters + string.digits + "_.:@-", min_size=1, max_size=128)


# ---------------------------------------------------------------- tokens


@given(customer=IDS, session=st.none() | IDS)
@settings(max_examples=200, deadline=None)
def test_a_token_names_its_customer_and_conversation(customer: str, session: str | None
                                                     ) -> None:
    token = mint_customer_token(SECRET, customer, session_id=session)
    assert verify_customer_token(SECRET, token) == Customer(customer, session or customer)
    assert token.isascii() and " " not in token


@given(junk=st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_anything_else_is_a_token_error(junk: str) -> None:
    with pytest.raises(TokenError):
        verify_customer_token(SECRET, junk)


def test_tokens_expire_and_are_bound_to_the_secret() -> None:
    token = mint_customer_token(SECRET, "u1001", ttl=60, now=1000.0)
    assert verify_customer_token(SECRET, token, now=1059.0).customer_id == "u1001"
    with pytest.raises(TokenError, match="expired"):
        verify_customer_token(SECRET, token, now=1060.0)
    with pytest.raises(TokenError, match="signature"):
        verify_customer_token("another-secret-0123456789", token, now=1000.0)
    body, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    with pytest.raises(TokenError):
        verify_customer_token(SECRET, f"{body}.{flipped}", now=1000.0)
    assert issubclass(TokenError, KimiAgentError)


def test_bad_token_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="16 bytes"):
        mint_customer_token("short", "u1001")
    with pytest.raises(ConfigurationError, match="customer_id"):
        mint_customer_token(SECRET, "顾客 1")
    with pytest.raises(ConfigurationError, match="session_id"):
        mint_customer_token(SECRET, "u1", session_id="")
    with pytest.raises(ConfigurationError, match="ttl"):
        mint_customer_token(SECRET, "u1", ttl=0)
    with pytest.raises(ConfigurationError, match="differ"):
        WebOptions(secret=SECRET, staff_key=SECRET)
    with pytest.raises(ConfigurationError, match="secret"):
        WebOptions(secret="short")
    with pytest.raises(ConfigurationError, match="staff_key"):
        WebOptions(secret=SECRET, staff_key="short")
    with pytest.raises(ConfigurationError, match="rate limit"):
        RateLimit(0)


# ---------------------------------------------------------------- rate limits


def test_rate_limiter_refills_evenly_per_key() -> None:
    limiter = RateLimiter(RateLimit(3, per=30.0))
    assert [limiter.take("顾客甲", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("顾客甲", now=0.0) == pytest.approx(10.0)
    assert limiter.take("顾客乙", now=0.0) == 0.0
    assert limiter.take("顾客甲", now=10.0) == 0.0
    assert limiter.take("顾客甲", now=10.0) > 0
    assert RateLimiter(None).take("x") == 0.0


def test_rate_limiter_forgets_full_buckets() -> None:
    limiter = RateLimiter(RateLimit(2, per=1.0), max_keys=10)
    for i in range(50):
        limiter.take(f"k{i}", now=float(i))
    assert len(limiter._buckets) <= 11


# ---------------------------------------------------------------- the lock seam


class LockingStore:
    """A store whose sessions carry a lock of their own (as a store shared by replicas
    would): records who holds it, and can refuse it."""

    def __init__(self, refuse: bool = False) -> None:
        self.sessions: dict[str, MemorySession] = {}
        self.log: list[str] = []
        self.refuse = refuse
        self.timeouts: list[float] = []

    def session(self, session_id: str) -> Any:
        store = self
        inner = self.sessions.setdefault(session_id, MemorySession(session_id))

        class Locked:
            def __init__(self) -> None:
                self.session_id = session_id

            async def get_items(self, limit: int | None = None) -> Any:
                store.log.append("read")
                return await inner.get_items(limit)

            async def add_items(self, items: Any) -> None:
                assert store.log[-1] != "released", "wrote without the lock"
                store.log.append("write")
                await inner.add_items(items)

            async def pop_item(self) -> Any:
                return await inner.pop_item()

            async def clear_session(self) -> None:
                await inner.clear_session()

            @asynccontextmanager
            async def lock(self, timeout: float) -> AsyncIterator[None]:
                store.timeouts.append(timeout)
                if store.refuse:
                    raise TimeoutError
                store.log.append("locked")
                try:
                    yield
                finally:
                    store.log.append("released")

        return Locked()


def _agent(client: GatewayClient) -> Agent[Any, str]:
    return Agent(instructions="你是客服。", client=client)


@pytest.mark.anyio
async def test_a_session_lock_of_the_store_is_held_for_the_whole_run() -> None:
    sim = GatewaySimulator(responder=lambda request: Reply(text="您好，请问有什么可以帮您？"))
    store = LockingStore()
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        options = WebOptions(secret=SECRET, staff_key=STAFF_KEY)
        app = create_app(Agent(instructions="你是客服。", client=client, busy_timeout=2.5),
                         store, options)
        async with serve(app) as root, httpx.AsyncClient(base_url=root) as http:
            events = await say(http, customer_headers("u1"), "你好")
    assert events[-1].data["output"] == "您好，请问有什么可以帮您？"
    assert store.timeouts == [2.5]
    locked, released = store.log.index("locked"), store.log.index("released")
    writes = [i for i, entry in enumerate(store.log) if entry == "write"]
    assert writes and all(locked < i < released for i in writes)


@pytest.mark.anyio
async def test_a_lock_that_cannot_be_had_is_conversation_busy() -> None:
    sim = GatewaySimulator(responder=lambda request: Reply(text="好的"))
    store = LockingStore(refuse=True)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        app = create_app(_agent(client), store, WebOptions(secret=SECRET))
        async with serve(app) as root, httpx.AsyncClient(base_url=root) as http:
            response = await http.post("/api/conversation/messages", json={"message": "你好"},
                                       headers=customer_headers("u1"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_busy"
    assert await store.sessions["u1"].get_items() == [] and not sim.requests


# ---------------------------------------------------------------- shutdown


@pytest.mark.anyio
async def test_shutting_down_lets_runs_under_way_finish(tmp_path: Path) -> None:
    sim = GatewaySimulator(responder=lambda request: Reply(text="这是一个比较长的回答。" * 5),
                           latency=Latency(first_token=0.2, tokens_per_second=100))
    store_sessions: dict[str, MemorySession] = {}

    class Store:
        def session(self, session_id: str) -> MemorySession:
            return store_sessions.setdefault(session_id, MemorySession(session_id))

    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        service = ChatService(_agent(client), Store(), WebOptions(secret=SECRET))
        async with service:
            runs = [await service.send(Customer(f"c{i}", f"c{i}"), "你好") for i in range(3)]
            assert service.running == 3
        # leaving the block waited for them: each answered and was stored
        assert service.running == 0
        for run in runs:
            assert run.finished and run.records[-1]["kind"] == "done"
            items = await store_sessions[run.session_id].get_items()
            assert [m.role for m in items] == ["user", "assistant"]
        with pytest.raises(KimiAgentError) as refused:
            await service.send(Customer("late", "late"), "你好")
        assert getattr(refused.value, "status", None) == 503


@pytest.mark.anyio
async def test_shutdown_grace_bounds_the_wait(tmp_path: Path) -> None:
    sim = GatewaySimulator(responder=lambda request: Reply(text="慢" * 200),
                           latency=Latency(first_token=0.05, tokens_per_second=20))
    sessions: dict[str, MemorySession] = {}

    class Store:
        def session(self, session_id: str) -> MemorySession:
            return sessions.setdefault(session_id, MemorySession(session_id))

    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        service = ChatService(_agent(client), Store(),
                              WebOptions(secret=SECRET, shutdown_grace=0.3))
        async with service:
            run = await service.send(Customer("c", "c"), "你好")
        assert run.finished and service.running == 0
        assert run.records[-1]["kind"] == "error"
        assert run.records[-1]["code"] == "interrupted"         # the log says how it ended
        # cancelled mid-answer: the session holds the customer's message, no half answer
        items = await sessions["c"].get_items()
        assert [m.role for m in items] == ["user"]
    await anyio.sleep(0)


# ---------------------------------------------------------------- the conversation book


@pytest.mark.anyio
async def test_the_book_keeps_held_conversations_across_restarts(tmp_path: Path) -> None:
    from kimi_agent import Handoff
    from kimi_agent.web import ConversationBook

    book = ConversationBook(tmp_path / "web.db")
    await book.set("会话-1", "u1", "handoff", Handoff("complaint", "顾客投诉发货慢", "投诉专席"))
    await book.set("会话-2", "u2", "pending_approval")
    await book.set("会话-3", "u3", "active")
    book.close()
    again = ConversationBook(tmp_path / "web.db")
    [held] = await again.with_status("handoff")
    assert (held.session_id, held.customer_id) == ("会话-1", "u1")
    assert held.handoff == Handoff("complaint", "顾客投诉发货慢", "投诉专席")
    assert [e.session_id for e in await again.with_status("pending_approval")] == ["会话-2"]
    await again.set("会话-1", "u1", "active")
    assert await again.with_status("handoff") == []
    entry = await again.get("会话-1")
    assert entry is not None and entry.status == "active" and entry.handoff is None
    assert await again.get("nobody") is None
    again.close()
    again.close()
    with pytest.raises(RuntimeError, match="closed"):
        await again.get("会话-1")


@pytest.mark.anyio
async def test_a_refused_start_does_not_free_the_run_that_came_meanwhile() -> None:
    """A message refused before its run starts (another customer's conversation) ends its
    claim; a run the owner starts on the same conversation meanwhile stays counted (so
    shutting down waits for it) and its conversation stays busy."""
    from kimi_agent.web import ConversationBook

    answer = anyio.Event()

    async def slow(request: Any) -> Reply:
        await answer.wait()
        return Reply(text="您的订单已发货。")

    class PausingBook(ConversationBook):
        """Holds the second removal of a claim until told (a slow server)."""

        def __init__(self) -> None:
            super().__init__()
            self.ended: list[str] = []
            self.pausing = anyio.Event()
            self.go_on = anyio.Event()

        async def end_run(self, session_id: str, claim: str) -> None:
            self.ended.append(claim)
            if self.ended.count(claim) == 2:
                self.pausing.set()
                await self.go_on.wait()
            await super().end_run(session_id, claim)

    sessions: dict[str, MemorySession] = {}

    class Store:
        def session(self, session_id: str) -> MemorySession:
            return sessions.setdefault(session_id, MemorySession(session_id))

    book = PausingBook()
    sim = GatewaySimulator(responder=slow)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        service = ChatService(_agent(client), Store(), WebOptions(secret=SECRET), book=book)
        async with service:
            await book.create("会话-1", "顾客甲")
            refused: list[int] = []

            async def stranger() -> None:
                try:
                    await service.send(Customer("顾客乙", "会话-1"), "你好")
                except KimiAgentError as error:
                    refused.append(getattr(error, "status", 0))

            async with anyio.create_task_group() as group:
                group.start_soon(stranger)
                while not (book.pausing.is_set() or refused):   # refused, or paused
                    await anyio.sleep(0.01)
                run = await service.send(Customer("顾客甲", "会话-1"), "我的订单到哪了？")
                book.go_on.set()
            assert refused == [403]
            assert service.running == 1 and not run.finished
            with pytest.raises(KimiAgentError) as busy:
                await service.send(Customer("顾客甲", "会话-1"), "在吗？")
            assert getattr(busy.value, "code", None) == "conversation_busy"
            answer.set()
        assert run.finished and run.records[-1]["kind"] == "done"


@pytest.mark.anyio
async def test_a_marker_that_lapsed_while_the_book_was_down_is_claimed_again() -> None:
    """The book is unreachable for longer than the run's lease: once it is back, the run
    that still lives puts its marker back (other replicas see it running again)."""
    from kimi_agent.errors import SessionStoreUnavailableError
    from kimi_agent.web import ConversationBook

    answer = anyio.Event()

    async def slow(request: Any) -> Reply:
        await answer.wait()
        return Reply(text="您的订单已发货。")

    class FlakyBook(ConversationBook):
        """Renewals fail while `down` (a book server that went away)."""

        down = False

        async def renew_run(self, session_id: str, claim: str, lease: float, *,
                            run_id: str | None = None) -> bool:
            if self.down:
                raise SessionStoreUnavailableError("the book's server is down")
            return await super().renew_run(session_id, claim, lease, run_id=run_id)

    sessions: dict[str, MemorySession] = {}

    class Store:
        def session(self, session_id: str) -> MemorySession:
            return sessions.setdefault(session_id, MemorySession(session_id))

    book = FlakyBook()
    sim = GatewaySimulator(responder=slow)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        service = ChatService(_agent(client), Store(),
                              WebOptions(secret=SECRET, run_lease=0.5), book=book)
        async with service:
            run = await service.send(Customer("顾客甲", "会话-1"), "我的订单到哪了？")
            book.down = True
            with anyio.fail_after(10):
                while await book.run_marker("会话-1") is not None:
                    await anyio.sleep(0.05)
            book.down = False
            with anyio.fail_after(10):
                while (back := await book.run_marker("会话-1")) is None:
                    await anyio.sleep(0.05)
            assert back.run_id == run.run_id and back.replica == service.replica
            answer.set()
        assert run.finished and run.records[-1]["kind"] == "done"
        assert await book.run_marker("会话-1") is None
