"""Helpers for the web tests: the shop bot behind `kimi_agent.web` on a real loopback port
(uvicorn, the app's lifespan included), the simulator playing the model, and SSE reading."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from kimi_agent_tools.demo.bot import build_agent, make_deps
from kimi_agent_tools.demo.scenario import shop_responder

from examples.web_service import shop_deps
from kimi_agent import GatewayClient, SQLiteStore
from kimi_agent.testing import GatewaySimulator, Latency
from kimi_agent.web import (
    ChatService,
    ConversationBook,
    WebOptions,
    create_app,
    mint_customer_token,
)

SECRET = "网店-secret-0123456789abcdef"
STAFF_KEY = "staff-key-0123456789abcdef"


def customer_headers(customer: str, session: str | None = None) -> dict[str, str]:
    token = mint_customer_token(SECRET, customer, session_id=session)
    return {"authorization": f"Bearer {token}"}


STAFF = {"authorization": f"Bearer {STAFF_KEY}"}


@asynccontextmanager
async def serve(app: Any, *, grace: float = 5.0) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port while the block runs (lifespan
    on); yields `http://127.0.0.1:PORT`. Leaving the block shuts it down gracefully."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", log_level="warning",
                            timeout_graceful_shutdown=int(grace))
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await server.shutdown(sockets=[sock])
        sock.close()


@dataclass
class ShopWeb:
    url: str
    app: Any
    service: ChatService
    store: SQLiteStore
    sim: GatewaySimulator

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


@asynccontextmanager
async def shop_web(tmp_path: Path, *, latency: Latency | None = None,
                   tool_latency: bool = False, **options: Any) -> AsyncIterator[ShopWeb]:
    """The shop bot on the web (`kimi_agent.web.create_app`), served on loopback.
    `tool_latency`: the demo's look-ups take their short network-like delays."""
    sim = GatewaySimulator(responder=shop_responder, latency=latency or Latency())
    shared, _ = make_deps(tmp_path / "shop.db", customer_id=None, latency=tool_latency)
    settings = WebOptions(**{"secret": SECRET, "staff_key": STAFF_KEY, **options})
    async with sim.serve() as base, GatewayClient(base, sim.api_key) as client, \
            SQLiteStore(tmp_path / "sessions.db", synchronous="NORMAL") as store:
        book = ConversationBook(tmp_path / "sessions.db")
        app = create_app(build_agent(client), store, settings, deps=shop_deps(shared),
                         book=book)
        try:
            async with serve(app) as url:
                yield ShopWeb(url, app, app.state.chat_service, store, sim)
        finally:
            book.close()
        assert not sim.errors, sim.errors


@dataclass
class Sse:
    event: str
    data: dict[str, Any]
    id: str | None


async def read_sse(response: httpx.Response) -> list[Sse]:
    """Every event of an SSE response, to its end."""
    out: list[Sse] = []
    async for frame in sse_frames(response):
        out.append(frame)
    return out


async def sse_frames(response: httpx.Response) -> AsyncIterator[Sse]:
    event, data, ident = "message", "", None
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Sse(event, json.loads(data), ident)
            event, data, ident = "message", "", None
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()


async def say(http: httpx.AsyncClient, headers: dict[str, str], text: str) -> list[Sse]:
    """Send a customer message and read the streamed run to its end."""
    async with http.stream("POST", "/api/conversation/messages", json={"message": text},
                           headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return await read_sse(response)


async def wait_idle(service: ChatService) -> None:
    """Wait until no run is under way (polling the service, no wall-clock assertion)."""
    for _ in range(2000):
        if service.running == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("runs are still going")
