"""The gateway's face of the simulator: envelope codes, headers, both auth headers, its faults.

Raw httpx over a real loopback server; the expectations are docs/wire/gateway.md's table and
headers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest

from kimi_agent.testing import GatewaySimulator, Latency, Reply

pytestmark = pytest.mark.anyio

USER = {"role": "user", "content": "帮我查一下订单 A1024。"}
ACCOUNTING = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-quota-remaining-credits",
    "x-org-quota-remaining-credits",
)


def reply(_: Any) -> Reply:
    return Reply(
        reasoning="先查订单。",
        text="订单 A1024 已发货。",
        tool_calls=[("get_order", {"order_id": "A1024"})],
    )


@pytest.fixture
def sim() -> GatewaySimulator:
    return GatewaySimulator(responder=reply)


@pytest.fixture
async def client(sim: GatewaySimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        sim.serve() as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
        ) as http,
    ):
        yield http


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "kimi-k2-6", "messages": [USER], **fields}


def error_of(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert isinstance(error, dict)
    return error


async def test_every_answer_carries_the_accounting_and_request_id_headers(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    ok = await client.post("/chat/completions", json=body())
    refused = await client.post("/chat/completions", json=body(model="kimi-k9"))
    async with client.stream("POST", "/chat/completions", json=body(stream=True)) as stream:
        streamed_headers = stream.headers
        await stream.aread()
    models = await client.get("/models")
    for headers in (ok.headers, refused.headers, streamed_headers, models.headers):
        for name in ACCOUNTING:
            assert headers[name], name
        assert headers["x-request-id"]
        assert headers["msh-request-id"] == headers["x-request-id"]
    assert float(ok.headers["x-ratelimit-limit"]) == 50.0
    assert int(ok.headers["x-ratelimit-reset"]) > datetime.now(UTC).timestamp()
    assert sim.requests[0].request_id == ok.headers["x-request-id"]


async def test_success_bills_and_failure_does_not(sim: GatewaySimulator, client: httpx.AsyncClient):
    first = await client.post("/chat/completions", json=body())
    credits = int(first.headers["x-quota-remaining-credits"])
    assert credits < 100_000_000  # the first answer was billed before its headers went out
    refused = await client.post("/chat/completions", json=body(temperature=0.3))
    assert refused.status_code == 400
    assert int(refused.headers["x-quota-remaining-credits"]) == credits
    second = await client.post("/chat/completions", json=body())
    assert int(second.headers["x-quota-remaining-credits"]) < credits


async def test_moonshot_headers_can_be_left_out() -> None:
    sim = GatewaySimulator(moonshot_headers=False)
    async with sim.serve() as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            "/chat/completions", json=body(), headers={"x-api-key": sim.api_key}
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"] and "msh-request-id" not in response.headers


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": "sim-key"}, 200),
        ({"x-api-key": "sim-key", "Authorization": "Bearer wrong"}, 200),
        ({"x-api-key": "wrong", "Authorization": "Bearer sim-key"}, 401),
        ({"Authorization": "Bearer sim-key"}, 200),
        ({}, 401),
    ],
)
async def test_x_api_key_is_accepted_and_wins_over_bearer(
    sim: GatewaySimulator, client: httpx.AsyncClient, headers: dict[str, str], status: int
):
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=headers) as bare:
        response = await bare.post("/chat/completions", json=body())
    assert response.status_code == status, response.text
    if status == 401:
        assert error_of(response)["code"] == "invalid_api_key"
    if headers.get("x-api-key") == "wrong":  # a foreign key never lands in the record
        assert sim.last_request.headers["x-api-key"] == "<redacted>"


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "code"),
    [
        ("concurrency_limit", 429, "rate_limit_error", "concurrency_limit"),
        ("insufficient_balance", 402, "insufficient_balance_error", "insufficient_balance"),
        ("quota_exceeded", 402, "quota_exceeded_error", "quota_exceeded"),
        ("permission_denied", 403, "permission_error", "permission_denied"),
        ("model_not_in_group", 403, "permission_error", "model_not_in_group"),
        ("model_not_found", 400, "invalid_request_error", "model_not_found"),
        ("unsupported_model", 400, "invalid_request_error", "unsupported_model"),
    ],
)
async def test_the_gateway_error_table_is_injectable(
    sim: GatewaySimulator,
    client: httpx.AsyncClient,
    kind: Any,
    status: int,
    error_type: str,
    code: str,
):
    sim.inject("kimi-k2-5", kind=kind)
    response = await client.post("/chat/completions", json=body(model="kimi-k2-5"))
    assert response.status_code == status
    error = error_of(response)
    assert (error["type"], error["code"]) == (error_type, code)
    assert error["message"].startswith(code)
    if "model" in kind:
        assert "kimi-k2-5" in error["message"]
    assert sim.last_request.error_code == code
    assert (await client.post("/chat/completions", json=body(model="kimi-k2-5"))).is_success


async def test_model_not_found_can_answer_404(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject(kind="model_not_found", status=404)
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 404 and error_of(response)["code"] == "model_not_found"


async def test_spend_cap_names_its_reset_in_message_and_header(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    reset = datetime(2026, 5, 25, 14, 0, tzinfo=UTC)
    sim.inject(kind="spend_cap", reset_at=reset)
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 429
    error = error_of(response)
    assert error == {
        "message": (
            "rate_limit_5h exceeded: 50.00 / 50.00 used; resets at 2026-05-25 14:00:00 UTC"
        ),
        "type": "rate_limit_error",
    }
    assert response.headers["x-ratelimit-reset"] == str(int(reset.timestamp()))
    assert response.headers["x-ratelimit-remaining"] == "0.00"


async def test_spend_cap_window_and_default_reset(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject(kind="spend_cap", window="24h", retry_after=3600)
    response = await client.post("/chat/completions", json=body())
    message = error_of(response)["message"]
    assert message.startswith("rate_limit_24h exceeded: 50.00 / 50.00 used; resets at ")
    reset = int(response.headers["x-ratelimit-reset"])
    shown = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert message.endswith(shown)
    assert response.headers["retry-after"] == "3600"


async def sse_lines(client: httpx.AsyncClient, **fields: Any) -> list[str]:
    async with client.stream("POST", "/chat/completions", json=body(stream=True, **fields)) as r:
        assert r.status_code == 200
        raw = await r.aread()
    assert not raw.startswith(b"\xef\xbb\xbf")  # no byte-order mark before the first event
    return [line for line in raw.decode().split("\n") if line]


@pytest.mark.parametrize("done", [False, True])
async def test_a_terminal_error_frame_mid_stream(
    sim: GatewaySimulator, client: httpx.AsyncClient, done: bool
):
    sim.inject(kind="stream_error", after_chunks=3, done=done, code="upstream_error")
    lines = await sse_lines(client)
    assert len(lines) == 4 + done
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:3]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    frame = json.loads(lines[3].removeprefix("data: "))
    assert frame == {
        "error": {
            "message": "upstream model failed while generating",
            "type": "server_error",
            "code": "upstream_error",
        }
    }
    assert (lines[-1] == "data: [DONE]") is done


async def test_a_stream_error_fault_on_a_plain_request_is_a_502(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    sim.inject(kind="stream_error")
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 502 and error_of(response)["type"] == "server_error"


async def test_a_stream_and_a_body_without_choices(
    sim: GatewaySimulator, client: httpx.AsyncClient
):
    sim.inject(kind="no_choices", times=2)
    lines = await sse_lines(client)
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    assert all(chunk["choices"] == [] for chunk in chunks) and chunks[-1]["usage"]
    plain = (await client.post("/chat/completions", json=body())).json()
    assert plain["choices"] == [] and plain["usage"]["total_tokens"] > 0


async def test_a_think_only_reply(sim: GatewaySimulator, client: httpx.AsyncClient):
    sim.inject(kind="think_only")
    message = (await client.post("/chat/completions", json=body())).json()["choices"][0]
    assert message["finish_reason"] == "stop"
    assert message["message"]["content"] == "" and message["message"]["reasoning_content"]
    assert "tool_calls" not in message["message"]


@pytest.mark.parametrize(("kind", "expected"), [("duplicate_ids", "same"), ("empty_ids", "")])
async def test_duplicate_or_empty_tool_call_ids(kind: Any, expected: str) -> None:
    sim = GatewaySimulator(responder=lambda _: Reply(reasoning="查两个。", text=None))
    sim.inject(kind=kind)
    async with sim.serve() as base_url, httpx.AsyncClient(base_url=base_url) as http:
        auth = {"x-api-key": sim.api_key}
        answer = await http.post("/chat/completions", json=body(), headers=auth)
    calls = answer.json()["choices"][0]["message"]["tool_calls"]
    ids = [call["id"] for call in calls]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert (ids[0] == "") is (expected == "")


async def test_the_concurrency_cap_refuses_only_what_is_over_it() -> None:
    sim = GatewaySimulator(concurrency_limit=2, latency=Latency(first_token=1.0))
    statuses: list[int] = []
    async with sim.serve() as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def one() -> None:
            response = await http.post(
                "/chat/completions", json=body(), headers={"x-api-key": sim.api_key}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert error_of(response)["code"] == "concurrency_limit"

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(one)
        assert sim.in_flight == 0
    assert sim.max_in_flight >= 3  # two held, one more refused while they were in flight
    assert statuses.count(200) == 2 and statuses.count(429) == 3


async def test_max_in_flight_counts_overlap_without_a_cap() -> None:
    sim = GatewaySimulator(latency=Latency(first_token=0.5))
    async with sim.serve() as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        headers = {"x-api-key": sim.api_key}
        await http.post("/chat/completions", json=body(), headers=headers)
        assert sim.max_in_flight == 1
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(
                    lambda: http.post("/chat/completions", json=body(), headers=headers)
                )
    assert sim.max_in_flight == 3


async def test_models_lists_the_gateway_fields(client: httpx.AsyncClient):
    models = (await client.get("/models")).json()["data"]
    k26 = next(m for m in models if m["id"] == "kimi-k2-6")
    assert k26["context_window"] == 131072 and k26["max_output_tokens"] == 16384
    assert "tools" in k26["capabilities"] and k26["family"] == "kimi"
