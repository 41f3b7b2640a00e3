"""The web layer when its store's server is down (PostgreSQL or Redis, stores and books
alike, or the store alone): every endpoint that needs the store answers a typed JSON 503
`store_unavailable`, not a 500, and the customer is not told the server's host, port or
user."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from kimi_agent_tools.demo.bot import build_agent

from kimi_agent import GatewayClient, PostgresStore, RedisStore
from kimi_agent.testing import GatewaySimulator
from kimi_agent.web import ConversationBook, PostgresBook, RedisBook, WebOptions, create_app
from tests.webkit import SECRET, STAFF, STAFF_KEY, customer_headers, serve

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _down(kind: str, port: int) -> tuple[Any, Any]:
    if kind == "postgres-store-only":            # the book answers, the session store not
        url = f"postgresql://客服@127.0.0.1:{port}/shop"
        return PostgresStore(url, timeout=1, min_size=0), ConversationBook()
    if kind == "postgres":
        url = f"postgresql://客服@127.0.0.1:{port}/shop"
        return PostgresStore(url, timeout=1, min_size=0), PostgresBook(url, timeout=1)
    url = f"redis://127.0.0.1:{port}/0"
    return RedisStore(url, timeout=1), RedisBook(url, timeout=1)


@pytest.mark.parametrize("kind", ["postgres", "redis", "postgres-store-only"])
async def test_a_store_that_is_down_is_a_503_that_names_no_server(kind: str) -> None:
    port = _closed_port()
    store, book = _down(kind, port)
    sim = GatewaySimulator()
    async with sim.serve() as base, GatewayClient(base, sim.api_key) as client:
        app = create_app(build_agent(client), store, WebOptions(secret=SECRET,
                                                                 staff_key=STAFF_KEY),
                         book=book)
        try:
            async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                me = customer_headers("u1001")
                answers = [
                    await http.get("/api/conversation", headers=me),
                    await http.get("/api/conversation/messages", headers=me),
                    await http.post("/api/conversation/messages", headers=me,
                                    json={"message": "你好！我的订单 A1024 到哪了？"}),
                    await http.get("/api/staff/conversations/u1001", headers=STAFF),
                ]
                overview = await http.get("/api/staff/overview", headers=STAFF)
        finally:
            await store.aclose()
            await book.aclose()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == "store_unavailable" and "请稍后再试" in error["message"]
        assert answer.headers["retry-after"] == "5"
        assert str(port) not in answer.text and "127.0.0.1" not in answer.text
    if kind == "postgres-store-only":                  # its queues are the book's: empty
        assert overview.json() == {"approvals": [], "handoffs": [], "running": []}
    else:
        assert overview.status_code == 503
        assert overview.json()["error"]["code"] == "store_unavailable"
    assert not sim.requests                            # no run began


async def test_a_store_lost_mid_run_is_told_to_the_customer_without_its_address() -> None:
    """The store goes away after the run started (the customer's message was read, the
    answer cannot be written): the run's log ends in `store_unavailable`, and what the
    customer reads names no host."""
    from kimi_agent import Agent, MemorySession
    from kimi_agent.errors import SessionStoreUnavailableError
    from kimi_agent.testing import Reply
    from kimi_agent.web import ChatService, Customer
    from kimi_agent.web._views import for_viewer

    class FlakyStore:
        """Sessions whose server goes down once the run has begun writing."""

        def __init__(self) -> None:
            self.sessions: dict[str, MemorySession] = {}
            self.writes = 0

        def session(self, session_id: str) -> Any:
            store = self
            inner = self.sessions.setdefault(session_id, MemorySession(session_id))

            class Flaky:
                def __init__(self) -> None:
                    self.session_id = session_id

                def __getattr__(self, name: str) -> Any:
                    return getattr(inner, name)

                async def add_items(self, items: Any) -> None:
                    store.writes += 1
                    if store.writes > 1:
                        raise SessionStoreUnavailableError(
                            "cannot append to session 'u1': PostgreSQL at "
                            "postgresql://bot@db.internal:5432/shop is unreachable")
                    await inner.add_items(items)

            return Flaky()

    sim = GatewaySimulator(responder=lambda request: Reply(text="您的订单已发货。"))
    async with sim.serve() as base, GatewayClient(base, sim.api_key) as client:
        service = ChatService(Agent(instructions="你是客服。", client=client), FlakyStore(),
                              WebOptions(secret=SECRET))
        async with service:
            run = await service.send(Customer("u1", "u1"), "我的订单到哪了？")
            async for _ in run.follow(-1, heartbeat=3600.0):
                pass
    last = for_viewer(run.records[-1], service.customer_view)
    assert last is not None and last["kind"] == "error", run.records
    assert last["code"] == "store_unavailable" and "db.internal" not in str(last)
