"""The shop bot on a web site: a host app that mounts `kimi_agent.web` under `/support`.

网店客服上线。What this program adds to the framework's web layer is only what a shop's own
site would: who the signed-in customer is, and the shop's data.

    GET  /                       the shop's page, with the chat widget embedded by a script
                                 tag (`?customer=u1002` signs in another demo customer)
    /support/...                 kimi_agent.web: the API, /support/widget, /support/staff

How it is put together, and why:
- **One `Agent`, one `GatewayClient`, one store** for the whole process (made at start-up,
  closed at shut-down in the app's lifespan): an agent holds configuration only, the client
  pools connections, the store keeps its connections for all sessions.
- **One host or several** (`store_url`, `--store`): by default the conversations and the
  web layer's conversation book live in `sessions.db` (SQLite) in the data dir. Given a
  `postgresql://…` or `redis://…` URL, run the program as several processes (on several
  hosts, behind any load balancer, no sticky sessions needed): they share the conversations,
  the book (who owns a conversation, hand-offs, approvals, and a marker for every run under
  way, so a message to a conversation busy on another process is refused at once) and,
  with `concurrency` (`--concurrency N`), one cap on the gateway account's requests in
  flight, held through that same server. A process that dies mid-run frees its
  conversation after the run marker's lease (`WebOptions.run_lease`) and the store's lock
  expire; the next message repairs the unanswered step. A run's live events stream from
  the process that runs it; another process answers `GET …/events` for it with 409
  `run_on_other_replica` and serves the shared history once the run ended (the widget
  waits and reloads). The shop's demo orders stay in `shop.db` in each process's data dir
  (a real shop has its own database).
- **The host signs the customer in**: the page mints a customer token
  (`mint_customer_token`) for the signed-in customer and hands it to the widget. The web
  layer takes the conversation from the token, never from a request, so a customer reaches
  only their own conversation.
- **Deps per customer** (`shop_deps`): the order tools of a run see only that customer's
  orders.
- Runs, approvals by staff, hand-offs that hold a conversation for a person, rate limits
  and the rest are `kimi_agent.web`'s (see docs/guides/web.md).
"""

from __future__ import annotations

import html
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from kimi_agent_tools import ShopDeps
from kimi_agent_tools.demo.bot import DEMO_CUSTOMER, build_agent, make_deps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from kimi_agent import GatewayClient
from kimi_agent.web import (
    ChatService,
    Customer,
    WebOptions,
    create_router,
    mint_customer_token,
    open_backend,
)

__all__ = ["PREFIX", "create_app", "shop_deps"]

PREFIX = "/support"

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>小象优选</title></head>
<body style="font-family: 'PingFang SC','Microsoft YaHei','WenQuanYi Micro Hei',sans-serif">
<h1>小象优选</h1><p>您好，{name}。有问题请点右下角的“在线客服”。</p>
<script src="{prefix}/static/embed.js" data-token="{token}" data-label="在线客服" async></script>
</body></html>
"""


def shop_deps(shared: ShopDeps) -> Callable[[Customer], ShopDeps]:
    """The deps of one customer's runs: the shop's stores, limited to that customer."""
    def deps(customer: Customer) -> ShopDeps:
        return ShopDeps(shared.order_store, shared.knowledge_base,
                        customer_id=customer.customer_id,
                        handoff_queues=shared.handoff_queues)
    return deps


def create_app(data_dir: str | Path, *, base_url: str | None = None,
               api_key: str | None = None, latency: bool = False,
               secret: str | None = None, staff_key: str | None = None,
               store_url: str | None = None, concurrency: int | None = None,
               limiter_key: str | None = None, run_lease: float = 15.0) -> Starlette:
    """The shop's app; `base_url`/`api_key` default to the environment (the real gateway).

    `data_dir` holds `shop.db` (the demo orders, seeded on first start) and, without
    `store_url`, `sessions.db` (conversations, and the web layer's book of them).
    `store_url` (`postgresql://…`, `redis://…`, `sqlite:///…`, `memory`) puts those
    elsewhere, shared by every process given the same URL; `concurrency` caps the gateway
    requests in flight (shared through that server by every process, keyed by a hash of
    the API key or by `limiter_key`). Without `secret`/`staff_key` random ones are made
    (`app.state.secret`, `app.state.staff_key`).

    Raises:
        ConfigurationError: an unknown `store_url`, a `concurrency` under 1.
    """
    data = Path(data_dir)
    secret = secret or secrets.token_urlsafe(32)
    staff_key = staff_key or secrets.token_urlsafe(24)
    options = WebOptions(secret=secret, staff_key=staff_key, title="小象优选 · 在线客服",
                         greeting="您好！我是小象优选的智能客服小象，请问有什么可以帮您？",
                         run_lease=run_lease)
    data.mkdir(parents=True, exist_ok=True)
    shared, _ = make_deps(data / "shop.db", customer_id=None, latency=latency)
    backend = open_backend(store_url or f"sqlite:///{(data / 'sessions.db').resolve()}",
                           concurrency=concurrency, limiter_key=limiter_key,
                           api_key=api_key or os.environ.get("BYTESPIKE_API_KEY"))
    client = GatewayClient(base_url, api_key, concurrency=backend.concurrency)
    service = ChatService(build_agent(client), backend.store, options, deps=shop_deps(shared),
                          book=backend.book)

    async def home(request: Request) -> HTMLResponse:
        # a real shop knows the customer from its own login; the demo takes ?customer=
        customer = request.query_params.get("customer", DEMO_CUSTOMER)
        token = mint_customer_token(secret, customer, ttl=3600)
        return HTMLResponse(_PAGE.format(name=html.escape(customer), prefix=PREFIX,
                                         token=html.escape(token)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with client, service:
                yield
        finally:
            await backend.aclose()

    app = Starlette(routes=[Route("/", home), Mount(PREFIX, app=create_router(service))],
                    lifespan=lifespan)
    app.state.service, app.state.sessions = service, backend.store
    app.state.backend = backend
    app.state.secret, app.state.staff_key = secret, staff_key
    return app
