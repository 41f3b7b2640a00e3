"""kimi_agent.web over HTTP: the shop bot on a real loopback port (uvicorn), the simulator
playing the model. Runs stream in order, AG-UI events validate against the protocol's own
models, customers reach only their own conversation, staff endpoints need the staff key,
bad requests get JSON 4xx, a dropped client loses nothing, many customers run at once."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from ag_ui.core import Event as AguiEvent
from ag_ui.core import EventType
from pydantic import TypeAdapter

from kimi_agent.testing import Latency
from tests.webkit import (
    STAFF,
    Sse,
    customer_headers,
    read_sse,
    say,
    shop_web,
    sse_frames,
    wait_idle,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

WHERE = "你好！我的订单 A1024 到哪了？"
REFUND = "上个月买的保温杯（订单 A1025）有一个杯盖漏水，能退一个杯子的钱吗？"
COMPLAINT = "说实话你们这次发货太慢了，我要投诉！"
AGUI = TypeAdapter(AguiEvent)


def kinds(events: list[Sse]) -> list[str]:
    return [e.event for e in events]


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] and body["message"]
    return body


# ---------------------------------------------------------------- runs as SSE


async def test_a_run_streams_its_events_in_order(tmp_path: Path) -> None:
    async with shop_web(tmp_path) as web, web.client() as http:
        events = await say(http, customer_headers("u1001"), WHERE)
    names = kinds(events)
    assert names[0] == "run_started" and names[-2:] == ["usage", "done"]
    assert events[0].data["session_id"] == "u1001"
    # step 1: text, then the two look-ups; step 2: the answer
    first_tool = names.index("tool_call_started")
    assert "text_delta" in names[:first_tool]
    started = [e.data for e in events if e.event == "tool_call_started"]
    finished = [e.data for e in events if e.event == "tool_call_finished"]
    assert [s["name"] for s in started] == ["get_order", "get_shipping_status"]
    assert [s["label"] for s in started] == ["正在查询订单…", "正在查询物流…"]
    assert {f["call_id"] for f in finished} == {s["call_id"] for s in started}
    assert all(f["status"] == "ok" for f in finished)
    steps = [e.data["step"] for e in events if e.event == "step_finished"]
    assert steps == [1, 2]
    assert names.index("step_finished") > max(i for i, n in enumerate(names)
                                               if n == "tool_call_finished")
    # customers see neither the reasoning nor the tools' arguments and results
    assert "reasoning_delta" not in names
    assert all("arguments" not in s for s in started)
    assert all("result" not in f for f in finished)
    # ids count up within the run (hidden records leave gaps), so a client can resume
    # after any of them
    run_id = events[0].data["run_id"]
    ids = [(e.id or "").rpartition(":") for e in events]
    assert {run for run, _, _ in ids} == {run_id}
    indices = [int(i) for _, _, i in ids]
    assert indices[0] == 0 and indices == sorted(set(indices))
    answer = "".join(e.data["text"] for e in events
                     if e.event == "text_delta" and e.data["step"] == 2)
    assert "SF1402938475612" in answer and events[-1].data["output"] == answer
    assert events[-1].data["status"] == "completed"


async def test_reasoning_and_tool_details_only_when_the_app_opts_in(tmp_path: Path) -> None:
    async with shop_web(tmp_path, show_reasoning=True, show_tool_details=True,
                        tool_labels={"get_order": "查订单中"}) as web, web.client() as http:
        events = await say(http, customer_headers("u1001"), WHERE)
        history = (await http.get("/api/conversation/messages",
                                  headers=customer_headers("u1001"))).json()["messages"]
    reasoning = "".join(e.data["text"] for e in events if e.event == "reasoning_delta")
    assert "同时查询" in reasoning
    started = [e.data for e in events if e.event == "tool_call_started"]
    assert json.loads(started[0]["arguments"]) == {"order_id": "A1024"}
    assert started[0]["label"] == "查订单中" and started[1]["label"] == "正在查询物流…"
    assert any(m["role"] == "tool" for m in history)
    assert any("reasoning" in m for m in history if m["role"] == "assistant")


async def test_history_hides_tool_internals_from_customers(tmp_path: Path) -> None:
    async with shop_web(tmp_path) as web, web.client() as http:
        await say(http, customer_headers("u1001"), WHERE)
        mine = (await http.get("/api/conversation/messages",
                               headers=customer_headers("u1001"))).json()["messages"]
        full = (await http.get("/api/staff/conversations/u1001/messages",
                               headers=STAFF)).json()["messages"]
    assert [m["role"] for m in mine] == ["user", "assistant", "assistant"]
    assert mine[0]["content"] == WHERE
    calls = mine[1]["tool_calls"]
    assert [c["name"] for c in calls] == ["get_order", "get_shipping_status"]
    assert all(set(c) == {"call_id", "name", "label"} for c in calls)
    assert not any("reasoning" in m for m in mine)
    assert [m["role"] for m in full] == ["user", "assistant", "tool", "tool", "assistant"]
    assert full[1]["reasoning_content"] and full[1]["tool_calls"][0]["function"]["arguments"]


async def test_json_answer_for_clients_without_sse(tmp_path: Path) -> None:
    async with shop_web(tmp_path) as web, web.client() as http:
        response = await http.post("/api/conversation/messages", json={"message": WHERE},
                                   headers={**customer_headers("u1001"),
                                            "accept": "application/json"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "completed"
    assert body["tools"] == ["get_order", "get_shipping_status"]
    assert "SF1402938475612" in body["output"]
    assert body["events"][0]["kind"] == "run_started"


# ---------------------------------------------------------------- approvals and hand-offs


async def test_refund_waits_for_staff_then_continues(tmp_path: Path) -> None:
    me = customer_headers("u1001")
    async with shop_web(tmp_path) as web, web.client() as http:
        events = await say(http, me, REFUND)
        assert kinds(events)[-3:] == ["approval_requested", "usage", "done"]
        [pending] = events[-3].data["pending"]
        assert pending == {"call_id": pending["call_id"], "tool": "request_refund",
                           "label": "正在提交退款申请…"}
        assert events[-1].data["status"] == "pending_approval"

        state = (await http.get("/api/conversation", headers=me)).json()
        assert state["status"] == "pending_approval"
        assert [p["tool"] for p in state["pending"]] == ["request_refund"]
        busy = await http.post("/api/conversation/messages", json={"message": "好了吗？"},
                               headers=me)
        assert busy.status_code == 409 and error_of(busy)["code"] == "awaiting_approval"

        queue = (await http.get("/api/staff/approvals", headers=STAFF)).json()["approvals"]
        [conversation] = queue
        assert conversation["customer_id"] == "u1001"
        [call] = conversation["pending"]
        assert call["arguments"]["order_id"] == "A1025" and call["arguments"]["amount"] == 89.0

        decided = await http.post("/api/staff/conversations/u1001/approvals",
                                  json={"approved": [call["call_id"]]}, headers=STAFF)
        assert decided.status_code == 202, decided.text
        run_id = decided.json()["run_id"]
        async with http.stream("GET", "/api/conversation/events", params={"run_id": run_id},
                               headers=me) as response:
            resumed = await read_sse(response)
        assert kinds(resumed)[0] == "run_started" and resumed[-1].data["status"] == "completed"
        assert "退款单号 RF" in resumed[-1].data["output"]
        again = await http.post("/api/staff/conversations/u1001/approvals",
                                json={"approved": [call["call_id"]]}, headers=STAFF)
        assert again.status_code == 409 and error_of(again)["code"] == "approval_mismatch"
        assert (await http.get("/api/staff/approvals", headers=STAFF)).json() == \
            {"approvals": []}
        assert (await http.get("/api/conversation", headers=me)).json()["status"] == "idle"


async def test_staff_rejects_with_a_reason(tmp_path: Path) -> None:
    me = customer_headers("u1001")
    async with shop_web(tmp_path) as web, web.client() as http:
        events = await say(http, me, REFUND)
        [pending] = events[-3].data["pending"]
        async with http.stream("POST", "/api/staff/conversations/u1001/approvals",
                               json={"rejected": {pending["call_id"]: "超过退款期限"}},
                               headers={**STAFF, "accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            staff_view = await read_sse(response)
        finished = [e.data for e in staff_view if e.event == "tool_call_finished"]
        assert finished[0]["status"] == "rejected" and "超过退款期限" in finished[0]["result"]
        items = await web.store.session("u1001").get_items()
        assert any(m.role == "tool" and "超过退款期限" in str(m.content) for m in items)


async def test_handoff_holds_the_conversation_for_a_person(tmp_path: Path) -> None:
    me = customer_headers("u1001")
    async with shop_web(tmp_path) as web, web.client() as http:
        events = await say(http, me, COMPLAINT)
        handoff = next(e.data for e in events if e.event == "handoff")
        assert handoff == {"kind": "handoff", "reason": "complaint", "queue": "投诉专席"}
        assert events[-1].data["status"] == "handoff"

        state = (await http.get("/api/conversation", headers=me)).json()
        assert state["status"] == "handoff" and state["handoff"]["queue"] == "投诉专席"
        refused = await http.post("/api/conversation/messages", json={"message": "在吗？"},
                                  headers=me)
        assert refused.status_code == 409 and error_of(refused)["code"] == "held_by_person"
        before = len(web.sim.requests)

        queue = (await http.get("/api/staff/handoffs", headers=STAFF)).json()["handoffs"]
        assert [(h["session_id"], h["reason"], h["queue"]) for h in queue] == \
            [("u1001", "complaint", "投诉专席")]
        assert "投诉" in queue[0]["summary"]
        staff_state = (await http.get("/api/staff/conversations/u1001", headers=STAFF)).json()
        assert staff_state["handoff"]["summary"] == queue[0]["summary"]

        released = await http.post("/api/staff/conversations/u1001/release", headers=STAFF)
        assert released.json() == {"session_id": "u1001", "status": "active"}
        twice = await http.post("/api/staff/conversations/u1001/release", headers=STAFF)
        assert twice.status_code == 409 and error_of(twice)["code"] == "not_held"
        assert len(web.sim.requests) == before            # nothing went to the bot meanwhile
        after = await say(http, me, "好的，谢谢！")
        assert after[-1].data["status"] == "completed"


# ---------------------------------------------------------------- AG-UI


def agui_input(text: str, thread: str = "客户端线程") -> dict[str, Any]:
    return {"threadId": thread, "runId": "run-前端-1", "state": {}, "tools": [], "context": [],
            "forwardedProps": {},
            "messages": [{"id": "m0", "role": "assistant", "content": "您好"},
                         {"id": "m1", "role": "user", "content": text}]}


async def agui_run(http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
                   ) -> list[Any]:
    events = []
    async with http.stream("POST", "/api/agui", json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(AGUI.validate_json(line[5:].strip()))
    return events


async def test_agui_events_validate_against_the_protocol_models(tmp_path: Path) -> None:
    me = customer_headers("u1001")
    async with shop_web(tmp_path) as web, web.client() as http:
        events = await agui_run(http, me, agui_input(WHERE))
        refund = await agui_run(http, me, agui_input(REFUND))
        history = await web.store.session("u1001").get_items()
    types = [e.type for e in events]
    assert types[0] == EventType.RUN_STARTED and types[-1] == EventType.RUN_FINISHED
    assert events[0].thread_id == "u1001"               # the token's session, not the body's
    assert events[0].run_id == "run-前端-1"
    starts = [e.message_id for e in events if e.type == EventType.TEXT_MESSAGE_START]
    ends = [e.message_id for e in events if e.type == EventType.TEXT_MESSAGE_END]
    assert starts == ends and len(starts) == 2
    calls = [e for e in events if e.type == EventType.TOOL_CALL_START]
    assert [c.tool_call_name for c in calls] == ["get_order", "get_shipping_status"]
    assert calls[0].parent_message_id == starts[0]
    assert not any(e.type == EventType.TOOL_CALL_ARGS for e in events)   # hidden
    results = [e for e in events if e.type == EventType.TOOL_CALL_RESULT]
    assert {r.tool_call_id for r in results} == {c.tool_call_id for c in calls}
    assert [e.step_name for e in events if e.type == EventType.STEP_FINISHED] == \
        ["step-1", "step-2"]
    text = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT
                   and e.message_id == starts[1])
    assert events[-1].result["output"] == text and "SF1402938475612" in text
    # a run waiting for approval ends with an interrupt naming the call
    finished = refund[-1]
    assert finished.outcome.type == "interrupt"
    [interrupt] = finished.outcome.interrupts
    assert interrupt.reason == "tool_approval" and interrupt.tool_call_id
    assert any(e.type == EventType.CUSTOM and e.name == "approval_requested" for e in refund)
    # only the newest user message of the input was taken
    assert [m.content for m in history if m.role == "user"] == [WHERE, REFUND]


async def test_agui_reasoning_events_when_visible(tmp_path: Path) -> None:
    async with shop_web(tmp_path, show_reasoning=True, show_tool_details=True) as web, \
            web.client() as http:
        events = await agui_run(http, customer_headers("u1001"), agui_input(WHERE))
    types = [e.type for e in events]
    assert EventType.REASONING_START in types and EventType.REASONING_END in types
    assert types.count(EventType.REASONING_START) == types.count(EventType.REASONING_END)
    args = [e for e in events if e.type == EventType.TOOL_CALL_ARGS]
    assert json.loads(args[0].delta) == {"order_id": "A1024"}


# ---------------------------------------------------------------- who may see what


async def test_a_customer_cannot_reach_another_customers_conversation(tmp_path: Path) -> None:
    alice, bob = customer_headers("u1001"), customer_headers("u1002")
    async with shop_web(tmp_path) as web, web.client() as http:
        bob_events = await say(http, bob, "订单 A1026 发货了吗？")
        bob_run = bob_events[0].data["run_id"]
        # Alice has only her token: every customer endpoint answers about her conversation
        body = {"message": WHERE, "session_id": "u1002", "customer_id": "u1002"}
        mine = await say(http, alice, json.dumps(body, ensure_ascii=False))
        assert mine[0].data["session_id"] == "u1001"
        state = (await http.get("/api/conversation", headers=alice,
                                params={"session_id": "u1002"})).json()
        assert state["session_id"] == "u1001"
        messages = (await http.get("/api/conversation/messages", headers=alice,
                                   params={"session_id": "u1002"})).json()
        assert messages["session_id"] == "u1001"
        assert "A1026" not in json.dumps(messages, ensure_ascii=False)
        events = await http.get("/api/conversation/events", headers=alice,
                                params={"run_id": bob_run})
        assert events.status_code == 404 and error_of(events)["code"] == "run_not_found"
        agui = await agui_run(http, alice, agui_input("你好", thread="u1002"))
        assert agui[0].thread_id == "u1001"
        # a token for Bob's conversation minted for Alice (a host bug) is refused
        wrong = customer_headers("u1001", session="u1002")
        for method, path in (("GET", "/api/conversation"), ("GET", "/api/conversation/messages"),
                             ("POST", "/api/conversation/messages"),
                             ("GET", "/api/conversation/events"), ("POST", "/api/agui")):
            response = await http.request(method, path, headers=wrong,
                                          json=agui_input("你好") if "agui" in path
                                          else {"message": "你好"})
            assert response.status_code == 403, (path, response.text)
            assert error_of(response)["code"] == "not_your_conversation"
        # a token edited to name Bob's conversation no longer verifies
        token = alice["authorization"].split()[1]
        _, signature = token.split(".")

        forged_payload = base64.urlsafe_b64encode(json.dumps(
            {"v": 1, "sub": "u1002", "sid": "u1002", "exp": 4_000_000_000}).encode()
        ).rstrip(b"=").decode()
        forged = {"authorization": f"Bearer {forged_payload}.{signature}"}
        response = await http.get("/api/conversation/messages", headers=forged)
        assert response.status_code == 401 and error_of(response)["code"] == "invalid_token"
        # and Bob's history is untouched
        bob_items = await web.store.session("u1002").get_items()
        assert [m.content for m in bob_items if m.role == "user"] == ["订单 A1026 发货了吗？"]


STAFF_ROUTES = [
    ("GET", "/api/staff/overview"), ("GET", "/api/staff/approvals"),
    ("GET", "/api/staff/handoffs"), ("GET", "/api/staff/conversations/u1001"),
    ("GET", "/api/staff/conversations/u1001/messages"),
    ("GET", "/api/staff/conversations/u1001/events"),
    ("POST", "/api/staff/conversations/u1001/approvals"),
    ("POST", "/api/staff/conversations/u1001/release"),
]


async def test_staff_endpoints_refuse_customer_tokens(tmp_path: Path) -> None:
    async with shop_web(tmp_path) as web, web.client() as http:
        await say(http, customer_headers("u1001"), COMPLAINT)
        for method, path in STAFF_ROUTES:
            kwargs: dict[str, Any] = {"json": {"approved": ["x"]}} if method == "POST" else {}
            customer = await http.request(method, path, headers=customer_headers("u1001"),
                                          **kwargs)
            assert customer.status_code == 403, (path, customer.text)
            assert error_of(customer)["code"] == "staff_only"
            anonymous = await http.request(method, path, **kwargs)
            assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"]
            wrong = await http.request(method, path, headers={"authorization": "Bearer nope"},
                                       **kwargs)
            assert wrong.status_code == 401
            assert error_of(wrong)["code"] == "invalid_staff_key"
        # the staff key is no customer token either
        response = await http.get("/api/conversation", headers=STAFF)
        assert response.status_code == 401
        assert (await http.post("/api/staff/conversations/u1001/release",
                                headers=STAFF)).status_code == 200


async def test_staff_endpoints_are_off_without_a_staff_key(tmp_path: Path) -> None:
    async with shop_web(tmp_path, staff_key=None) as web, web.client() as http:
        response = await http.get("/api/staff/overview", headers=STAFF)
        assert response.status_code == 403 and error_of(response)["code"] == "staff_disabled"
        assert (await http.get("/api/config")).json()["staff"] is False


# ---------------------------------------------------------------- bad requests


async def test_oversized_and_malformed_requests_get_json_4xx(tmp_path: Path) -> None:
    me = {**customer_headers("u1001"), "content-type": "application/json"}
    post = "/api/conversation/messages"
    async with shop_web(tmp_path, max_body_bytes=1024, max_message_chars=100) as web, \
            web.client() as http:
        cases: list[tuple[int, str, httpx.Response]] = []

        async def case(status: int, code: str, response: Any) -> None:
            cases.append((status, code, await response))

        await case(413, "too_large", http.post(post, content=b"{" + b" " * 2000 + b"}",
                                               headers=me))

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 500
        await case(413, "too_large", http.post(post, content=chunks(), headers=me))
        await case(413, "message_too_long", http.post(post, json={"message": "长" * 101},
                                                      headers=me))
        await case(400, "bad_json", http.post(post, content=b'{"message": ', headers=me))
        await case(400, "bad_json", http.post(post, content=b"\xff\xfe", headers=me))
        await case(400, "bad_json", http.post(post, content='["你好"]'.encode(), headers=me))
        await case(400, "no_message", http.post(post, json={"message": "  "}, headers=me))
        await case(400, "no_message", http.post(post, json={"text": "你好"}, headers=me))
        await case(415, "not_json", http.post(post, content="你好".encode(),
                                              headers={**me, "content-type": "text/plain"}))
        await case(401, "missing_token", http.post(post, json={"message": "你好"}))
        await case(401, "invalid_token", http.post(post, json={"message": "你好"},
                                                   headers={"authorization": "Bearer x.y"}))
        await case(422, "bad_agui_input", http.post("/api/agui", json={"messages": "x"},
                                                    headers=me))
        await case(422, "no_user_message", http.post(
            "/api/agui", json={"threadId": "t", "runId": "r", "messages": []}, headers=me))
        await case(400, "bad_after", http.get("/api/conversation/events",
                                              params={"after": "x"}, headers=me))
        await case(404, "run_not_found", http.get("/api/conversation/events", headers=me))
        await case(400, "bad_decisions", http.post(
            "/api/staff/conversations/u1001/approvals", json={"approved": "x"},
            headers=STAFF))
        await case(400, "bad_decisions", http.post(
            "/api/staff/conversations/u1001/approvals", json={}, headers=STAFF))
        await case(400, "bad_session_id", http.get("/api/staff/conversations/%E4%BD%A0",
                                                   headers=STAFF))
        await case(404, "unknown_conversation", http.post(
            "/api/staff/conversations/nobody/approvals", json={"approved": ["x"]},
            headers=STAFF))
        await case(404, "not_found", http.get("/api/nothing-here"))
        await case(405, "method_not_allowed", http.delete("/api/conversation", headers=me))
        for status, code, response in cases:
            assert (response.status_code, error_of(response)["code"]) == (status, code), \
                response.text
        assert len(web.sim.requests) == 0                   # nothing reached the model


async def test_rate_limit_per_customer(tmp_path: Path) -> None:
    from kimi_agent.web import RateLimit

    async with shop_web(tmp_path, message_limit=RateLimit(2, 3600.0)) as web, \
            web.client() as http:
        await say(http, customer_headers("u1001"), WHERE)
        await say(http, customer_headers("u1001"), "好的，谢谢！")
        limited = await http.post("/api/conversation/messages", json={"message": "再问一个"},
                                  headers=customer_headers("u1001"))
        assert limited.status_code == 429 and error_of(limited)["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        # another customer is not affected, and reads are not messages
        await say(http, customer_headers("u1002"), WHERE)
        assert (await http.get("/api/conversation",
                               headers=customer_headers("u1001"))).status_code == 200


# ---------------------------------------------------------------- robustness


async def test_a_dropped_client_leaves_the_session_valid(tmp_path: Path) -> None:
    me = customer_headers("u1001")
    async with shop_web(tmp_path, latency=Latency(first_token=0.02, tokens_per_second=400)
                        ) as web:
        seen: list[Sse] = []
        async with web.client() as http, http.stream(
                "POST", "/api/conversation/messages", json={"message": WHERE},
                headers=me) as response:
            async for frame in sse_frames(response):
                seen.append(frame)
                if frame.event == "tool_call_started":
                    break                                    # the client goes away
        await wait_idle(web.service)
        items = await web.store.session("u1001").get_items()
        assert [m.role for m in items] == ["user", "assistant", "tool", "tool", "assistant"]
        assert "SF1402938475612" in str(items[-1].content)
        async with web.client() as http:
            # the rest of the run, from the last event the client saw
            run_id = seen[0].data["run_id"]
            async with http.stream("GET", "/api/conversation/events",
                                   headers={**me, "last-event-id": seen[-1].id or ""},
                                   params={"run_id": run_id}) as response:
                rest = await read_sse(response)
            assert int((rest[0].id or "").rpartition(":")[2]) > \
                int((seen[-1].id or "").rpartition(":")[2])
            assert [f.event for f in rest].count("tool_call_started") == 1
            assert rest[-1].event == "done" and rest[-1].data["status"] == "completed"
            state = (await http.get("/api/conversation", headers=me)).json()
            assert state["status"] == "idle" and state["run"]["finished"] is True
            again = await say(http, me, "好的，谢谢！")
            assert again[-1].data["status"] == "completed"


async def test_one_run_per_conversation_at_a_time(tmp_path: Path) -> None:
    me = customer_headers("u1001")
    async with shop_web(tmp_path, latency=Latency(first_token=0.05, tokens_per_second=200)
                        ) as web, web.client() as http:
        async with http.stream("POST", "/api/conversation/messages",
                               json={"message": WHERE}, headers=me) as first:
            frames = sse_frames(first)
            started = await frames.__anext__()
            assert started.event == "run_started"
            second = await http.post("/api/conversation/messages",
                                     json={"message": "还有别的吗？"}, headers=me)
            assert second.status_code == 409
            body = error_of(second)
            assert body["code"] == "conversation_busy"
            assert body["run_id"] == started.data["run_id"]
            rest = [f async for f in frames]
        assert rest[-1].event == "done"
        items = await web.store.session("u1001").get_items()
        assert [m.content for m in items if m.role == "user"] == [WHERE]


async def test_a_hundred_customers_at_once(tmp_path: Path) -> None:
    customers = [f"c{i:03d}" for i in range(100)]
    async with shop_web(tmp_path, latency=Latency(first_token=0.05, tokens_per_second=2000)
                        ) as web, web.client(limits=httpx.Limits(max_connections=200)) as http:
        answers: dict[str, list[Sse]] = {}
        most = 0

        async def ask(customer: str) -> None:
            answers[customer] = await say(http, customer_headers(customer), WHERE)

        async def watch() -> None:
            nonlocal most
            while len(answers) < len(customers):
                most = max(most, web.service.running)
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            for customer in customers:
                group.start_soon(ask, customer)
        assert most > 10                                    # they really ran together
        for customer in customers:
            events = answers[customer]
            assert events[0].data["session_id"] == customer
            assert events[-1].event == "done" and events[-1].data["status"] == "completed"
            # the order belongs to u1001: these customers are told it was not found
            assert "SF1402938475612" not in events[-1].data["output"]
            items = await web.store.session(customer).get_items()
            assert [m.content for m in items if m.role == "user"] == [WHERE]


async def test_cors_is_configurable(tmp_path: Path) -> None:
    allowed = "https://shop.example"
    async with shop_web(tmp_path, cors_origins=(allowed,)) as web, web.client() as http:
        preflight = await http.options("/api/conversation/messages", headers={
            "origin": allowed, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = await http.options("/api/conversation/messages", headers={
            "origin": "https://evil.example", "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in other.headers
        events = await say(http, {**customer_headers("u1001"), "origin": allowed}, WHERE)
        assert events[-1].event == "done"
    (tmp_path / "closed").mkdir()
    async with shop_web(tmp_path / "closed") as web, web.client() as http:
        response = await http.get("/api/config", headers={"origin": allowed})
        assert "access-control-allow-origin" not in response.headers
