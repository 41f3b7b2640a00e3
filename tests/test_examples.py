"""The examples run: the workflow (with its checkpoint resume), the web service (one agent,
a session per customer, approvals, hand-off, start-up and shut-down), and the demo's
scripted model on paths the demo itself does not take — all offline on the simulator."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from kimi_agent_tools.demo import build_agent, make_deps
from kimi_agent_tools.demo.scenario import FIRST_VISIT, RETURNING_VISIT, shop_responder

from examples.web_service import PREFIX, create_app
from kimi_agent import GatewayClient, SQLiteSession
from kimi_agent.testing import GatewaySimulator
from kimi_agent.web import mint_customer_token, verify_customer_token
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

SECRET = "example-secret-0123456789"
STAFF_KEY = "example-staff-0123456789"
STAFF = {"authorization": f"Bearer {STAFF_KEY}"}


def token_for(customer: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_customer_token(SECRET, customer)}",
            "accept": "application/json"}


@asynccontextmanager
async def web_service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    sim = GatewaySimulator(responder=shop_responder)
    async with sim.serve() as url:
        app = create_app(tmp_path, base_url=url, api_key=sim.api_key, secret=SECRET,
                         staff_key=STAFF_KEY)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url=f"http://shop{PREFIX}") as http:
                yield http, app
        assert app.state.sessions.closed          # shut down cleanly
        assert not sim.errors


async def say(http: httpx.AsyncClient, customer: str, text: str) -> dict[str, Any]:
    response = await http.post("/api/conversation/messages", json={"message": text},
                               headers=token_for(customer))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_web_service_conversation_approval_and_handoff(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, _):
        first = await say(http, "u1001", FIRST_VISIT[0])
        assert first["status"] == "completed"
        assert sorted(first["tools"]) == ["faq_search", "get_order", "get_shipping_status"]
        assert "SF1402938475612" in first["output"]

        refund = await say(http, "u1001", FIRST_VISIT[1])
        assert refund["status"] == "pending_approval"
        [pending] = refund["pending"]
        assert pending["tool"] == "request_refund" and "arguments" not in pending
        [waiting] = (await http.get("/api/staff/approvals", headers=STAFF)).json()["approvals"]
        assert waiting["pending"][0]["arguments"]["order_id"] == "A1025"

        decided = await http.post("/api/staff/conversations/u1001/approvals",
                                  json={"approved": [pending["call_id"]]}, headers=STAFF)
        assert decided.status_code == 202, decided.text
        followed = await http.get("/api/conversation/events", headers=token_for("u1001"),
                                  params={"run_id": decided.json()["run_id"]})
        assert "退款单号 RF" in followed.text
        again = await http.post("/api/staff/conversations/u1001/approvals",
                                json={"approved": [pending["call_id"]]}, headers=STAFF)
        assert again.status_code == 409

        complaint = await say(http, "u1001", FIRST_VISIT[2])
        assert complaint["status"] == "handoff"
        assert complaint["handoff"] == {"reason": "complaint", "queue": "投诉专席"}
        held = await http.post("/api/conversation/messages", json={"message": "在吗"},
                               headers=token_for("u1001"))
        assert held.status_code == 409 and held.json()["error"]["code"] == "held_by_person"

        history = (await http.get("/api/conversation/messages",
                                  headers=token_for("u1001"))).json()["messages"]
        # what the customer typed, with the phone number masked by the bot's PII guardrail
        masked = [text.replace("13812345678", "138****5678") for text in FIRST_VISIT]
        assert [m["content"] for m in history if m["role"] == "user"] == masked


async def test_web_service_customers_are_separate_and_concurrent(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, app):
        answers: dict[str, dict[str, Any]] = {}

        async def ask(customer: str, text: str) -> None:
            answers[customer] = await say(http, customer, text)

        async with anyio.create_task_group() as group:
            group.start_soon(ask, "u1001", "我的订单 A1024 到哪了？")
            group.start_soon(ask, "u1002", "我的订单 A1024 到哪了？")   # not u1002's order
        assert "SF1402938475612" in answers["u1001"]["output"]
        assert "没有查到" in answers["u1002"]["output"]
        assert "SF1402938475612" not in answers["u1002"]["output"]
        later = await say(http, "u1002", "订单 A1026 发货了吗？")
        assert "尚未发货" in later["output"]
        history = (await http.get("/api/conversation/messages",
                                  headers=token_for("u1002"))).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == \
            ["我的订单 A1024 到哪了？", "订单 A1026 发货了吗？"]
        assert app.state.service.running == 0               # no run left behind


async def test_web_service_refuses_bad_requests(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, _):
        me = token_for("u1")
        post = "/api/conversation/messages"
        assert (await http.post(post, json={}, headers=me)).status_code == 400
        assert (await http.post(post, content=b"{", headers={
            **me, "content-type": "application/json"})).status_code == 400
        assert (await http.post(post, json={"message": "长" * 2001},
                                headers=me)).status_code == 413
        assert (await http.post(post, json={"message": "你好"})).status_code == 401
        assert (await http.post("/api/staff/conversations/u1/approvals",
                                json={"approved": "x"}, headers=STAFF)).status_code == 400
        assert (await http.get("/api/staff/approvals", headers=me)).status_code == 403
        assert (await http.get("/healthz")).json() == {"ok": True, "running": 0}


async def test_web_service_host_page_embeds_the_widget(tmp_path: Path) -> None:
    async with web_service(tmp_path) as (http, _):
        page = (await http.get("http://shop/?customer=u1002")).text
        token = re.search(r'data-token="([^"]+)"', page)
        assert token is not None and f'src="{PREFIX}/static/embed.js"' in page
        assert verify_customer_token(SECRET, token.group(1)).customer_id == "u1002"
        widget = await http.get("/widget")
        assert widget.status_code == 200 and "static/widget.js" in widget.text
        assert "frame-ancestors" not in widget.headers["content-security-policy"]
        staff = await http.get("/staff")
        assert "frame-ancestors 'none'" in staff.headers["content-security-policy"]
        assert (await http.get("/static/embed.js")).status_code == 200


def test_web_service_command_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    with LiveCli(tmp_path, "--port", "0", "--data", str(tmp_path),
                 module="examples.web_service") as server:
        at = server.wait_for("Uvicorn running on ")
        url = server.output[at:].split()[3]
        page = httpx.get(f"{url}/", timeout=20).text
        token = re.search(r'data-token="([^"]+)"', page)
        assert token is not None
        response = httpx.post(f"{url}{PREFIX}/api/conversation/messages", timeout=20,
                              json={"message": "我的订单 A1024 到哪了？"},
                              headers={"authorization": f"Bearer {token.group(1)}",
                                       "accept": "application/json"})
        assert response.status_code == 200 and response.json()["status"] == "completed"
        server.interrupt()
        code = server.finish()
        output = server.output
    assert code == 0, output
    assert "离线：使用内置网关模拟器" in output and "staff key:" in output
    assert "Application shutdown complete." in output and "Traceback" not in output
    assert (tmp_path / "sessions.db").exists()


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


def test_web_service_runs_as_two_processes_on_one_redis_store(tmp_path: Path,
                                                              redis_url: str) -> None:
    """Two processes of the example on one Redis store (each on its own simulator): what
    a customer says through one is the history the other serves, and an unknown store is a
    usage error."""
    store = f"{redis_url}?prefix=ex{uuid.uuid4().hex[:8]}:"
    env = {"KIMI_AGENT_WEB_SECRET": "s" * 40, "KIMI_AGENT_STAFF_KEY": "k" * 40}
    first = LiveCli(tmp_path / "a", "--port", "0", "--store", store, "--concurrency", "2",
                    module="examples.web_service", env=env)
    second = LiveCli(tmp_path / "b", "--port", "0", "--store", store, "--concurrency", "2",
                     module="examples.web_service", env=env)
    with first, second:
        roots = []
        for server in (first, second):
            at = server.wait_for("Uvicorn running on ", timeout=60)
            roots.append(server.output[at:].split()[3])
        token = mint_customer_token("s" * 40, "u1001")
        headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
        answer = httpx.post(f"{roots[0]}{PREFIX}/api/conversation/messages", timeout=30,
                            json={"message": "我的订单 A1024 到哪了？"}, headers=headers)
        assert answer.status_code == 200 and answer.json()["status"] == "completed"
        history = httpx.get(f"{roots[1]}{PREFIX}/api/conversation/messages", timeout=30,
                            headers=headers).json()["messages"]
        assert history[0]["content"] == "我的订单 A1024 到哪了？"
        assert history[-1]["content"] == answer.json()["output"]
        for server in (first, second):
            server.interrupt()
            assert server.finish() == 0, server.output
    bad = subprocess.run([sys.executable, "-m", "examples.web_service", "--store",
                          "mysql://db/shop", "--data", str(tmp_path / "c")], cwd=ROOT,
                         env=cli_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "postgresql://" in bad.stderr, bad.stderr
