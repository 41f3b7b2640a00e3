"""The shop bot behind an HTTP API: one agent for every request, a session per customer.

网店客服 Web 服务。A Starlette app:

    POST /customers/{customer_id}/messages    {"message": "我的订单 A1024 到哪了？"}
         → {"status": "completed" | "pending_approval" | "handoff", "reply": ..., ...}
    POST /customers/{customer_id}/approvals   {"approved": [call ids], "rejected": {id: why}}
    GET  /customers/{customer_id}/messages    the conversation so far
    GET  /healthz

How it is put together, and why:
- **One `Agent`, one `GatewayClient`, one `SQLiteStore`** for the whole process, made at
  start-up and closed at shut-down (the app's lifespan). An agent holds configuration only,
  so concurrent requests share it safely; the client pools connections to the gateway; the
  store keeps one SQLite connection for all sessions.
- **A session per customer** (`store.session(customer_id)`), so a conversation continues
  across requests, processes and restarts.
- **One run at a time per customer** (`KeyedLocks`): two messages of one customer sent at
  once are answered in turn instead of interleaving in one history; different customers run
  concurrently. (Across several replicas this needs a shared lock or sticky routing.)
- The result's `status` is what the caller routes on: show `reply`; send
  `pending_approvals` to staff, who answer on `/approvals`; route a `handoff` to a person.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from kimi_agent_tools import ShopDeps
from kimi_agent_tools.demo.bot import build_agent, make_deps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kimi_agent import Agent, GatewayClient, RunResult, SQLiteStore
from kimi_agent.errors import ApprovalError, KimiAgentError

__all__ = ["KeyedLocks", "ShopService", "create_app"]

MAX_MESSAGE = 2000


class KeyedLocks:
    """A lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (anyio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class ShopService:
    """What the requests share: the agent, the session store, the shop's data."""

    agent: Agent[str]
    sessions: SQLiteStore
    deps: ShopDeps
    locks: KeyedLocks = field(default_factory=KeyedLocks)

    def deps_for(self, customer_id: str) -> ShopDeps:
        """The deps of one customer's runs: the order tools see only their orders."""
        return ShopDeps(self.deps.order_store, self.deps.knowledge_base,
                        customer_id=customer_id, handoff_queues=self.deps.handoff_queues)

    async def message(self, customer_id: str, text: str) -> dict[str, Any]:
        async with self.locks.hold(customer_id):
            result = await self.agent.run(text, deps=self.deps_for(customer_id),
                                          session=self.sessions.session(customer_id))
        return outcome(customer_id, result)

    async def decide(self, customer_id: str, approved: list[str],
                     rejected: dict[str, str]) -> dict[str, Any]:
        async with self.locks.hold(customer_id):
            result = await self.agent.resume(
                self.sessions.session(customer_id), approved=approved, rejected=rejected,
                deps=self.deps_for(customer_id))
        return outcome(customer_id, result)


def outcome(customer_id: str, result: RunResult[str]) -> dict[str, Any]:
    """A run as the API answers it."""
    handoff = result.handoff
    return {
        "customer_id": customer_id,
        "status": result.status,
        "reply": result.output if result.status == "completed" else _last_text(result),
        "pending_approvals": [
            {"call_id": p.call_id, "tool": p.tool, "arguments": p.arguments}
            for p in result.pending_approvals
        ],
        "handoff": None if handoff is None else
        {"reason": handoff.reason, "summary": handoff.summary, "queue": handoff.queue},
        "tools": [r.name for step in result.steps for r in step.tool_calls],
        "usage": {"requests": result.usage.requests,
                  "prompt_tokens": result.usage.prompt_tokens,
                  "completion_tokens": result.usage.completion_tokens,
                  "cached_tokens": result.usage.cached_tokens},
        "model": result.model,
    }


def _last_text(result: RunResult[str]) -> str:
    """What the model said to the customer in a run that ended on a tool step."""
    texts = [step.text for step in result.steps if step.text]
    return texts[-1] if texts else ""


def _service(request: Request) -> ShopService:
    service: ShopService = request.app.state.service
    return service


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def post_message(request: Request) -> JSONResponse:
    body = await _json_object(request)
    text = body.get("message") if body else None
    if not isinstance(text, str) or not text.strip():
        return _error(400, 'send {"message": "<the customer\'s text>"}')
    if len(text) > MAX_MESSAGE:
        return _error(413, f"a message may have at most {MAX_MESSAGE} characters")
    customer_id = request.path_params["customer_id"]
    try:
        return JSONResponse(await _service(request).message(customer_id, text.strip()))
    except ApprovalError as error:
        return _error(409, str(error))
    except KimiAgentError as error:
        return _error(502, f"the agent could not answer: {error}")


async def post_approvals(request: Request) -> JSONResponse:
    body = await _json_object(request)
    approved = body.get("approved", []) if body else None
    rejected = body.get("rejected", {}) if body else None
    if not isinstance(approved, list) or not isinstance(rejected, dict):
        return _error(400, 'send {"approved": [call ids], "rejected": {call id: reason}}')
    customer_id = request.path_params["customer_id"]
    try:
        decided = await _service(request).decide(
            customer_id, [str(a) for a in approved], {str(k): str(v) for k, v in rejected.items()})
    except ApprovalError as error:
        return _error(409, str(error))
    except KimiAgentError as error:
        return _error(502, f"the agent could not continue: {error}")
    return JSONResponse(decided)


async def get_messages(request: Request) -> JSONResponse:
    session = _service(request).sessions.session(request.path_params["customer_id"])
    items = await session.get_items()
    return JSONResponse({"messages": [m.model_dump(mode="json", exclude_none=True)
                                      for m in items]})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def create_app(data_dir: str | Path, *, base_url: str | None = None,
               api_key: str | None = None, latency: bool = False) -> Starlette:
    """The app; `base_url`/`api_key` default to the environment (the real gateway).

    `data_dir` holds `sessions.db` (conversations) and `shop.db` (the demo orders, seeded on
    first start).
    """
    data = Path(data_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        data.mkdir(parents=True, exist_ok=True)
        deps, _ = make_deps(data / "shop.db", customer_id=None, latency=latency)
        async with GatewayClient(base_url, api_key) as client, \
                SQLiteStore(data / "sessions.db") as sessions:
            app.state.service = ShopService(build_agent(client), sessions, deps)
            yield

    routes = [
        Route("/customers/{customer_id}/messages", post_message, methods=["POST"]),
        Route("/customers/{customer_id}/messages", get_messages, methods=["GET"]),
        Route("/customers/{customer_id}/approvals", post_approvals, methods=["POST"]),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
