"""`kimi-agent serve` as three replica processes on one PostgreSQL store, and on one Redis
store, against one gateway simulator in the test process: a run started on replica A is
`running` on B and B refuses a second message at once; the history written through A reads
back exactly through B; a hand-off recorded on A is in B's queue and released on B; an
approval asked for via A is decided on B; `--concurrency 2` holds across the replicas at
the simulator; a replica killed with SIGKILL mid-run frees its conversation after the lease.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from kimi_agent_tools.demo.scenario import shop_responder

from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.web import mint_customer_token
from tests.clikit import LiveCli

pytestmark = pytest.mark.timeout(120)

SECRET = "s" * 40
STAFF = "k" * 40


class Gate:
    """The demo's scripted shop model, that can be told to hold the requests it gets."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.waiting = 0

    async def __call__(self, request: SimRequest) -> Reply:
        self.waiting += 1
        try:
            while not self.open.is_set():
                await anyio.sleep(0.02)
            await anyio.sleep(0.03)       # long enough for requests of replicas to overlap
            return shop_responder(request)
        finally:
            self.waiting -= 1


class Replica:
    """One `kimi-agent serve` process and an HTTP client to it."""

    def __init__(self, server: LiveCli) -> None:
        self.server = server
        server.wait_for("staff key:", timeout=60)
        found = re.search(r"(http://\S+)/widget#token=", server.output)
        assert found is not None, server.output
        self.root = found.group(1)
        self.pid = server.process.pid

    def customer(self, method: str, path: str, customer: str, session: str | None = None,
                 **kwargs: Any) -> httpx.Response:
        token = mint_customer_token(SECRET, customer, session_id=session)
        headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
        return httpx.request(method, f"{self.root}/api/conversation{path}", headers=headers,
                             timeout=30, **kwargs)

    def staff(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.root}/api/staff{path}", timeout=30,
                             headers={"authorization": f"Bearer {STAFF}"}, **kwargs)


@pytest.fixture(params=["postgres", "redis"])
def shared_store(request: pytest.FixtureRequest) -> str:
    """An empty shared store; Redis locks lapse after 2 s (for the killed replica)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        return url
    redis_url: str = request.getfixturevalue("redis_url")
    return f"{redis_url}?prefix=w{uuid.uuid4().hex[:8]}:&lock_ttl=2"


@pytest.fixture
def cluster(shared_store: str, tmp_path: Path) -> Iterator[tuple[Gate, GatewaySimulator,
                                                                 list[Replica]]]:
    gate = Gate()
    sim = GatewaySimulator(responder=gate)
    with sim.serve_in_thread() as base_url:
        env = {"BYTESPIKE_BASE_URL": base_url, "BYTESPIKE_API_KEY": sim.api_key}
        servers = [LiveCli(tmp_path / f"home-{n}", "serve", "--port", "0", "--store",
                           shared_store, "--secret", SECRET, "--staff-key", STAFF,
                           "--concurrency", "2", "--run-lease", "2", "--grace", "5", env=env)
                   for n in range(3)]
        try:
            yield gate, sim, [Replica(server) for server in servers]
        finally:
            for server in servers:
                server.__exit__(None, None, None)


def wait_until(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {check}")


def test_replicas_share_runs_hand_offs_approvals_and_the_gateway_cap(
        cluster: tuple[Gate, GatewaySimulator, list[Replica]]) -> None:
    gate, sim, (a, b, c) = cluster

    # -- a run on A is running on B, and B refuses a second message at once ------------------
    gate.open.clear()
    answers: list[httpx.Response] = []
    asking = threading.Thread(target=lambda: answers.append(a.customer(
        "POST", "/messages", "u1001", json={"message": "你好！我的订单 A1024 到哪了？"})))
    asking.start()
    wait_until(lambda: gate.waiting == 1)
    state = b.customer("GET", "", "u1001").json()
    assert state["status"] == "running", state
    assert state["run"]["elsewhere"] and "replica" not in state["run"]   # hosts: staff only
    staff_state = b.staff("GET", "/conversations/u1001").json()
    assert staff_state["status"] == "running" and str(a.pid) in staff_state["run"]["replica"]
    running = b.staff("GET", "/overview").json()["running"]
    assert [(r["session_id"], str(a.pid) in r["replica"]) for r in running] == \
        [("u1001", True)]
    refused = b.customer("POST", "/messages", "u1001", json={"message": "在吗？"})
    assert refused.status_code == 409, refused.text          # while A's request is held
    assert refused.json()["error"]["code"] == "conversation_busy"
    assert refused.json()["error"]["elsewhere"] is True
    follow = b.customer("GET", "/events", "u1001")
    assert follow.status_code == 409
    assert follow.json()["error"]["code"] == "run_on_other_replica"
    gate.open.set()
    asking.join(30)
    [done] = answers
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    assert "A1024" in done.json()["output"]
    through_a = a.customer("GET", "/messages", "u1001").json()["messages"]
    through_b = b.customer("GET", "/messages", "u1001").json()["messages"]
    assert through_b == through_a
    assert through_b[0]["content"] == "你好！我的订单 A1024 到哪了？"
    assert through_b[-1]["content"] == done.json()["output"]
    assert b.customer("GET", "", "u1001").json()["status"] == "idle"
    assert b.staff("GET", "/overview").json()["running"] == []

    # -- a hand-off recorded on A is in B's queue; released on B, A takes messages again -----
    held = a.customer("POST", "/messages", "u1001",
                      json={"message": "发货太慢了，我要投诉，请转人工！"})
    assert held.status_code == 200 and held.json()["status"] == "handoff", held.text
    [queued] = b.staff("GET", "/handoffs").json()["handoffs"]
    assert queued["session_id"] == "u1001" and "投诉" in queued["summary"]
    refused = a.customer("POST", "/messages", "u1001", json={"message": "人呢？"})
    assert refused.json()["error"]["code"] == "held_by_person"
    assert b.staff("POST", "/conversations/u1001/release").json()["status"] == "active"
    assert c.staff("POST", "/conversations/u1001/release").json()["error"]["code"] == \
        "not_held"
    assert a.staff("GET", "/handoffs").json()["handoffs"] == []
    again = a.customer("POST", "/messages", "u1001", json={"message": "好的，谢谢！"})
    assert again.status_code == 200 and again.json()["status"] == "completed", again.text

    # -- an approval asked for via A is decided on B -----------------------------------------
    refund = a.customer("POST", "/messages", "u1001", "u1001-refund", json={
        "message": "上个月买的保温杯（订单 A1025）有一个杯盖漏水，能退一个杯子的钱吗？"})
    assert refund.json()["status"] == "pending_approval", refund.text
    [waiting] = b.staff("GET", "/approvals").json()["approvals"]
    assert waiting["session_id"] == "u1001-refund"
    call_id = waiting["pending"][0]["call_id"]
    decided = b.staff("POST", "/conversations/u1001-refund/approvals",
                      json={"approved": [call_id]})
    assert decided.status_code == 202, decided.text
    wait_until(lambda: a.customer("GET", "", "u1001", "u1001-refund").json()["status"]
               == "idle")
    history = c.customer("GET", "/messages", "u1001", "u1001-refund").json()["messages"]
    assert "退款单号" in history[-1]["content"], history[-1]
    assert a.staff("GET", "/approvals").json()["approvals"] == []

    # -- 20 conversations over 3 replicas with --concurrency 2: at most 2 at the gateway -----
    sim.max_in_flight = 0
    results: list[int] = []

    def greet(n: int) -> None:
        replica = (a, b, c)[n % 3]
        reply = replica.customer("POST", "/messages", f"u30{n:02d}",
                                 json={"message": "你好，在吗？"})
        results.append(reply.status_code)

    threads = [threading.Thread(target=greet, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 20
    assert sim.max_in_flight == 2                      # the cap held, and was reached

    # -- a replica killed mid-run: its marker lapses, another replica carries on ---------------
    gate.open.clear()
    lost = threading.Thread(target=lambda: _ignore_errors(lambda: c.customer(
        "POST", "/messages", "u1001", "u1001-kill", json={"message": "我的订单 A1024 到哪了？"})))
    lost.start()
    wait_until(lambda: gate.waiting == 1)
    assert a.customer("GET", "", "u1001", "u1001-kill").json()["status"] == "running"
    c.server.process.kill()
    c.server.process.wait(10)
    gate.open.set()
    lost.join(30)
    wait_until(lambda: a.customer("GET", "", "u1001", "u1001-kill").json()["status"]
               == "idle")
    after = a.customer("POST", "/messages", "u1001", "u1001-kill",
                       json={"message": "还在吗？A1024 什么时候到？"})
    assert after.status_code == 200 and after.json()["status"] == "completed", after.text
    messages = b.customer("GET", "/messages", "u1001", "u1001-kill").json()["messages"]
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users == ["我的订单 A1024 到哪了？", "还在吗？A1024 什么时候到？"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"]


def _ignore_errors(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):   # the replica is killed under it
        call()
