"""The examples run: the workflow (with its checkpoint resume), the web service (one agent,
a session per customer, approvals, hand-off, start-up and shut-down), and the demo's
scripted model on paths the demo itself does not take — all offline on the simulator."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from kimi_agent_tools.demo import build_agent, make_deps
from kimi_agent_tools.demo.scenario import FIRST_VISIT, RETURNING_VISIT, shop_responder

from examples.web_service import KeyedLocks, create_app
from kimi_agent import GatewayClient, SQLiteSession
from kimi_agent.testing import GatewaySimulator
from tests.clikit import ROOT, LiveCli, cli_env

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


# ---------------------------------------------------------------- the workflow


def test_workflow_crashes_and_recovers_from_its_checkpoints(tmp_path: Path) -> None:
    """The example killed (os._exit) after four steps, then started again: DBOS recovers the
    unfinished workflow, the finished model calls are read back (4 new calls: act 3, reply
    1), and no ticket is opened twice."""
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "examples.workflow", "--data",
                               str(tmp_path), *extra], cwd=ROOT, env=cli_env(tmp_path),
                              capture_output=True, text=True, encoding="utf-8", timeout=60)

    crashed = run("--crash-after", "4")
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr
    assert "💥" in crashed.stdout and "M2 triage" in crashed.stdout
    again = run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "M1 工单 TK000001" in again.stdout and "M2 工单 TK000002" in again.stdout
    assert "调用模型 4 次" in again.stdout
    assert "A1029" in again.stdout and "换货" in again.stdout
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        tickets = conn.execute("SELECT order_id, category FROM tickets ORDER BY id").fetchall()
    assert tickets == [("A1026", "shipping"), ("A1029", "product_quality")]
    third = run()                                   # all finished: nothing is asked again
    assert third.returncode == 0 and "调用模型 0 次" in third.stdout


# ---------------------------------------------------------------- the web service


@asynccontextmanager
async def web_service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    sim = GatewaySimulator(responder=shop_responder)
    async with sim.serve() as url:
        app = create_app(tmp_path, base_url=url, api_key=sim.api_key)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
                yield http, app
        assert app.state.service.sessions.closed          # shut down cleanly
        assert not sim.errors


async def say(http: httpx.AsyncClient, customer: str, text: str) -> dict[str, Any]:
    response = await http.post(f"/customers/{customer}/messages", json={"message": text})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_web_service_conversation_approval_and_handoff(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, _):
        first = await say(http, "u1001", FIRST_VISIT[0])
        assert first["status"] == "completed"
        assert sorted(first["tools"]) == ["faq_search", "get_order", "get_shipping_status"]
        assert "SF1402938475612" in first["reply"]

        refund = await say(http, "u1001", FIRST_VISIT[1])
        assert refund["status"] == "pending_approval"
        [pending] = refund["pending_approvals"]
        assert pending["tool"] == "request_refund"
        assert pending["arguments"]["order_id"] == "A1025"
        assert "审批" in refund["reply"]

        decided = await http.post("/customers/u1001/approvals",
                                  json={"approved": [pending["call_id"]]})
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "completed"
        assert "退款单号 RF" in decided.json()["reply"]
        again = await http.post("/customers/u1001/approvals",
                                json={"approved": [pending["call_id"]]})
        assert again.status_code == 409

        complaint = await say(http, "u1001", FIRST_VISIT[2])
        assert complaint["status"] == "handoff"
        assert complaint["handoff"]["reason"] == "complaint"
        assert complaint["handoff"]["queue"] == "投诉专席"

        history = (await http.get("/customers/u1001/messages")).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == list(FIRST_VISIT)


async def test_web_service_customers_are_separate_and_concurrent(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, app):
        answers: dict[str, dict[str, Any]] = {}

        async def ask(customer: str, text: str) -> None:
            answers[customer + text[:4]] = await say(http, customer, text)

        async with anyio.create_task_group() as group:
            group.start_soon(ask, "u1001", "我的订单 A1024 到哪了？")
            group.start_soon(ask, "u1002", "我的订单 A1024 到哪了？")   # not u1002's order
            group.start_soon(ask, "u1002", "订单 A1026 发货了吗？")
        assert "SF1402938475612" in answers["u1001我的订单"]["reply"]
        assert "没有查到" in answers["u1002我的订单"]["reply"]
        assert "SF1402938475612" not in answers["u1002我的订单"]["reply"]
        assert "尚未发货" in answers["u1002订单 A"]["reply"]
        # one customer's two concurrent messages ran one after the other, not interleaved
        history = (await http.get("/customers/u1002/messages")).json()["messages"]
        roles = [m["role"] for m in history]
        assert roles.count("user") == 2
        second_user = roles.index("user", 1)
        assert roles[second_user - 1] == "assistant" and "tool_calls" not in \
            history[second_user - 1]
        assert len(app.state.service.locks) == 0             # no lock left behind


async def test_web_service_refuses_bad_requests(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, _):
        assert (await http.post("/customers/u1/messages", json={})).status_code == 400
        assert (await http.post("/customers/u1/messages", content=b"{")).status_code == 400
        assert (await http.post("/customers/u1/messages",
                                json={"message": "长" * 2001})).status_code == 413
        assert (await http.post("/customers/u1/approvals",
                                json={"approved": "x"})).status_code == 400
        assert (await http.get("/healthz")).json() == {"ok": True}


def test_web_service_command_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    with LiveCli(tmp_path, "--port", "0", "--data", str(tmp_path),
                 module="examples.web_service") as server:
        at = server.wait_for("Uvicorn running on ")
        url = server.output[at:].split()[3]
        response = httpx.post(f"{url}/customers/u1001/messages", timeout=20,
                              json={"message": "我的订单 A1024 到哪了？"})
        assert response.status_code == 200 and response.json()["status"] == "completed"
        server.interrupt()
        code = server.finish()
        output = server.output
    assert code == 0, output
    assert "离线：使用内置网关模拟器" in output
    assert "Application shutdown complete." in output and "Traceback" not in output
    assert (tmp_path / "sessions.db").exists()


async def test_keyed_locks_serialise_per_key() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, tag: str) -> None:
        async with locks.hold(key):
            order.append(f"{tag}+")
            await anyio.sleep(0.01)
            order.append(f"{tag}-")

    async with anyio.create_task_group() as group:
        group.start_soon(hold, "a", "a1")
        group.start_soon(hold, "a", "a2")
    assert order in (["a1+", "a1-", "a2+", "a2-"], ["a2+", "a2-", "a1+", "a1-"])
    assert len(locks) == 0


# ---------------------------------------------------------------- the demo's scripted model


async def test_scripted_model_handles_refusals_and_unknown_orders(tmp_path: Path) -> None:
    """Three customers ask for the same refund: the third finds nothing left to refund; an
    unknown order is reported, not invented."""
    deps, created = make_deps(tmp_path / "shop.db", latency=False)
    assert created
    sim = GatewaySimulator(responder=shop_responder)
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        agent = build_agent(client)
        replies = []
        for n in range(3):
            session = SQLiteSession(f"c{n}", tmp_path / "s.db")
            result = await agent.run(FIRST_VISIT[1], deps=deps, session=session)
            if result.status == "pending_approval":
                ids = [p.call_id for p in result.pending_approvals]
                result = await agent.resume(session, approved=ids, deps=deps)
            replies.append(result.output)
            session.close()
        unknown = await agent.run("我的订单 Z9999 到哪了？", deps=deps)
        returning = await agent.run(RETURNING_VISIT[0], deps=deps)
    assert "退款单号" in replies[0] and "退款单号" in replies[1]
    assert "没有可退金额" in replies[2]
    assert "没有查到" in unknown.output and "Z9999" in unknown.output
    assert returning.status == "completed"          # no history: a plain FAQ answer
    assert not sim.errors
