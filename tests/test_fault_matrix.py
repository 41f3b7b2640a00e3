"""The fault matrix (issue 13): every fault the gateway, the network or a tool can make,
through the public `Agent` API, streamed and not.

Each cell asserts the documented outcome — a completed run, or a typed `KimiAgentError` (a
failed model call is `ModelFailedError` whose `cause` is a `GatewayError`), never an untyped
exception or an `ExceptionGroup` — and then that the session is still good: every tool call
answered exactly once, the user's message kept, and the next run on it accepted by the strict
simulator. Gateway faults come from the simulator where it can make them and from
`reliability.FaultProxy` (a raw loopback proxy in front of it) where it cannot: resets, cuts
at each phase, silence, trickling bytes, malformed bodies and frames, the gateway's own error
envelopes. Retries do not wait and time-outs are short, so the whole matrix stays quick.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest

from kimi_agent import Agent, KimiAgentError, MemorySession, ModelFailedError, tool
from kimi_agent.errors import GatewayError
from kimi_agent.testing import GatewaySimulator, Latency, Reply, SimRequest, ToolCallSpec
from kimi_agent.wire import ToolMessage
from reliability._kit import fast_retry, get_order, make_client, session_verdict, shop
from reliability._proxy import FaultProxy

pytestmark = pytest.mark.anyio

Expect = Literal["complete", "fail", "either"]
SHORT = 1.0
"""The client time-out of the cells that wait for a silent server (they retry once only)."""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Stage:
    """One simulator and one proxy in front of it, shared by the module's cells."""

    sim: GatewaySimulator
    proxy: FaultProxy
    url: str
    responder: Callable[[SimRequest], Reply] = shop
    tools: list[Any] = field(default_factory=list)

    def reset(self) -> None:
        self.sim.clear_faults()
        self.sim.requests.clear()
        self.sim.latency = Latency()
        self.proxy.clear()
        self.responder = shop


@pytest.fixture(scope="module")
async def stage() -> AsyncIterator[Stage]:
    holder: list[Stage] = []
    sim = GatewaySimulator(responder=lambda request: holder[0].responder(request), seed=13)
    async with sim.serve() as sim_url:
        proxy = FaultProxy(sim_url, seed=13)
        async with proxy.serve() as url:
            holder.append(Stage(sim, proxy, url))
            yield holder[0]


@pytest.fixture
def fresh(stage: Stage) -> Stage:
    stage.reset()
    return stage


async def play(agent: Agent[Any], prompt: str, session: MemorySession, streamed: bool,
               *, cancellable: bool = False) -> BaseException | None:
    """Run (or stream) `prompt`; the exception it ended with, None when it completed.

    A `CancelledError` that leaves the run when nobody cancelled it (`cancellable` False) is
    returned like any other exception, so the cell reports it as untyped.
    """
    try:
        if streamed:
            async with agent.stream(prompt, session=session) as run:
                async for _ in run:
                    pass
                assert run.result.status in ("completed", "pending_approval")
        else:
            result = await agent.run(prompt, session=session)
            assert result.status in ("completed", "pending_approval")
    except Exception as error:
        return error
    except anyio.get_cancelled_exc_class() as error:
        if cancellable:
            raise
        return error
    return None


def assert_outcome(error: BaseException | None, expect: Expect) -> None:
    if error is not None:
        assert not isinstance(error, BaseExceptionGroup), f"an ExceptionGroup: {error!r}"
        assert isinstance(error, KimiAgentError), f"an untyped error: {error!r}"
        if isinstance(error, ModelFailedError):
            assert isinstance(error.cause, GatewayError), repr(error.cause)
    if expect == "complete":
        assert error is None, f"expected a completed run, got {error!r}"
    elif expect == "fail":
        assert error is not None, "expected a typed error, the run completed"


async def assert_session_good(stage: Stage, agent: Agent[Any], session: MemorySession,
                              prompt: str, *, kept: bool = True) -> None:
    """The history is valid, the prompt kept, and the strict simulator takes the next run."""
    prompts = [prompt] if kept else []
    assert await session_verdict(agent, session, prompts) == []
    stage.reset()
    async with make_client(stage.url, stage.sim.api_key) as client:
        after = Agent(tools=[get_order], client=client)
        result = await after.run("谢谢，再确认一下订单 B204", session=session)
        assert result.status == "completed", result
        assert await session_verdict(after, session, [*prompts, "谢谢，再确认一下订单 B204"]) == []


async def cell(stage: Stage, streamed: bool, expect: Expect, *, prompt: str = "订单 A1024 到哪了？",
               timeout: float = 10.0, tools: list[Any] | None = None, **agent_options: Any
               ) -> tuple[BaseException | None, MemorySession]:
    session = MemorySession(f"顾客-{random.random()}")
    retry = fast_retry(1 if timeout <= SHORT else 2)
    async with make_client(stage.url, stage.sim.api_key, timeout=timeout, retry=retry) as client:
        options: dict[str, Any] = {"run_timeout": 20.0, "tool_timeout": 0.3, "tool_retries": 2,
                                   "max_steps": 6, **agent_options}
        agent = Agent(tools=tools if tools is not None else [get_order], client=client,
                      **options)
        error = await play(agent, prompt, session, streamed)
        assert_outcome(error, expect)
        await assert_session_good(stage, agent, session, prompt)
    return error, session


def fixed_on(branch: str, finding: str) -> pytest.MarkDecorator:
    """A cell main still fails, fixed on `branch` (not merged yet): strict, so the merge
    that fixes it turns it into a failure until this mark is removed."""
    return pytest.mark.xfail(strict=True, reason=f"issue 13 finding {finding}: fixed on branch "
                             f"{branch!r}, not yet on main")


STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
SCHEDULE = pytest.mark.parametrize("always", [False, True], ids=["once", "always"])


# --------------------------------------------------------------------------- gateway rows

def _envelope(type_: str, code: str | None, message: str) -> bytes:
    error: dict[str, str] = {"type": type_, "message": message}
    if code is not None:
        error["code"] = code
    return json.dumps({"error": error}, ensure_ascii=False).encode()


_RESET_AT = str(int(time.time()) + 3600)
GATEWAY_ROWS: list[tuple[str, int, bytes, dict[str, str], Expect, Expect]] = [
    # id, status, body, headers, outcome when once, outcome when always
    ("400-invalid_param", 400, _envelope("invalid_request_error", "invalid_param",
                                         "messages: field required"), {}, "fail", "fail"),
    ("400-model_not_found", 400, _envelope("invalid_request_error", "model_not_found",
                                           "model kimi-k2-6 not found"), {}, "either", "fail"),
    ("400-context_length", 400, _envelope("invalid_request_error", "context_length_exceeded",
                                          "prompt + max_tokens exceed the window"), {},
     "either", "fail"),
    ("401-invalid_api_key", 401, _envelope("authentication_error", "invalid_api_key",
                                           "invalid api key"), {}, "fail", "fail"),
    ("402-insufficient_balance", 402, _envelope("billing_error", "insufficient_balance",
                                                "余额不足，请充值"), {}, "fail", "fail"),
    ("402-quota_exceeded", 402, _envelope("billing_error", "quota_exceeded",
                                          "key quota used up"), {}, "fail", "fail"),
    ("403-permission_denied", 403, _envelope("permission_error", "permission_denied",
                                             "ip not allowed"), {}, "fail", "fail"),
    ("403-model_not_in_group", 403, _envelope("permission_error", "model_not_in_group",
                                              "model not in the key's group"), {},
     "either", "fail"),
    ("404-not_found", 404, _envelope("not_found_error", "not_found", "no such route"), {},
     "either", "fail"),
    ("413", 413, b"<html><body>413 Request Entity Too Large</body></html>",
     {"Content-Type": "text/html"}, "fail", "fail"),
    ("429-spend_cap", 429, _envelope(
        "rate_limit_error", None,
        "rate_limit_5h exceeded: 50.00 / 50.00 used; resets at 2026-05-25 14:00:00 UTC"),
     {"X-RateLimit-Limit": "50.00", "X-RateLimit-Remaining": "0.00",
      "X-RateLimit-Reset": _RESET_AT}, "either", "fail"),
    ("429-concurrency_limit", 429, _envelope("rate_limit_error", "concurrency_limit",
                                             "too many requests in flight"), {},
     "complete", "fail"),
    ("500", 500, _envelope("server_error", None, "internal error"), {}, "complete", "fail"),
    ("502", 502, b"Bad Gateway", {"Content-Type": "text/plain"}, "complete", "fail"),
    ("503", 503, _envelope("server_error", None, "no capacity"), {}, "complete", "fail"),
    ("504", 504, b"", {}, "complete", "fail"),
]


@STREAMED
@SCHEDULE
@pytest.mark.parametrize(("status", "body", "headers", "once", "always_"),
                         [row[1:] for row in GATEWAY_ROWS], ids=[row[0] for row in GATEWAY_ROWS])
async def test_gateway_error_rows(fresh: Stage, streamed: bool, always: bool, status: int,
                                  body: bytes, headers: dict[str, str], once: Expect,
                                  always_: Expect) -> None:
    if always:
        fresh.proxy.inject("respond", always=True, status=status, body=body, headers=headers)
    else:
        fresh.proxy.inject("respond", status=status, body=body, headers=headers)
    error, _ = await cell(fresh, streamed, always_ if always else once)
    if error is not None and isinstance(error, ModelFailedError):
        assert error.cause.status == status


MOONSHOT_ROWS: list[tuple[str, dict[str, Any], Expect, Expect]] = [
    ("429-rate_limit", {"kind": "rate_limit"}, "complete", "fail"),
    ("429-overloaded", {"kind": "overloaded", "retry_after": 0}, "complete", "fail"),
    ("429-quota", {"kind": "quota"}, "fail", "fail"),
    ("500-server_error", {"status": 500}, "complete", "fail"),
    ("503-server_error", {"status": 503}, "complete", "fail"),
    ("400-content_filter", {"status": 400, "error_type": "content_filter",
                            "message": "The request was rejected because it was considered "
                                       "high risk"}, "fail", "fail"),
    ("422", {"status": 422}, "fail", "fail"),
    ("401", {"kind": "unauthorized"}, "fail", "fail"),
    ("402", {"kind": "payment_required"}, "fail", "fail"),
]


@STREAMED
@SCHEDULE
@pytest.mark.parametrize(("fault", "once", "always_"), [row[1:] for row in MOONSHOT_ROWS],
                         ids=[row[0] for row in MOONSHOT_ROWS])
async def test_moonshot_error_rows(fresh: Stage, streamed: bool, always: bool,
                                   fault: dict[str, Any], once: Expect, always_: Expect) -> None:
    fresh.sim.inject(None, always=always, **fault)
    await cell(fresh, streamed, always_ if always else once)


# --------------------------------------------------------------------------- the network

NETWORK_ROWS: list[tuple[str, dict[str, Any], Expect, Expect, float]] = [
    # id, proxy fault, once, always, client time-out
    ("reset-before-headers", {"kind": "reset"}, "complete", "fail", 10.0),
    ("drop-before-headers", {"kind": "close"}, "complete", "fail", 10.0),
    ("cut-in-headers", {"kind": "cut_headers"}, "complete", "fail", 10.0),
    ("cut-after-headers", {"kind": "cut_body", "at": 0.0}, "complete", "fail", 10.0),
    ("cut-mid-body", {"kind": "cut_body", "at": 0.5}, "either", "fail", 10.0),
    ("reset-mid-body", {"kind": "reset_body", "at": 0.5}, "either", "fail", 10.0),
    ("cut-just-before-end", {"kind": "cut_body", "at": 0.97}, "either", "fail", 10.0),
    ("stall-mid-body", {"kind": "stall_body", "at": 0.5}, "either", "fail", SHORT),
    ("silent-server", {"kind": "silent"}, "complete", "fail", SHORT),
    ("slow-drip", {"kind": "drip", "piece": 5, "delay": 0.001}, "complete", "complete", 10.0),
    ("slow-server", {"kind": "delay", "delay": 0.05}, "complete", "complete", 10.0),
]


@STREAMED
@SCHEDULE
@pytest.mark.parametrize(("fault", "once", "always_", "timeout"),
                         [row[1:] for row in NETWORK_ROWS], ids=[row[0] for row in NETWORK_ROWS])
async def test_network_faults(fresh: Stage, streamed: bool, always: bool,
                              fault: dict[str, Any], once: Expect, always_: Expect,
                              timeout: float) -> None:
    options = dict(fault)
    fresh.proxy.inject(options.pop("kind"), always=always, **options)
    await cell(fresh, streamed, always_ if always else once, timeout=timeout)


SIM_TRANSPORT_ROWS: list[tuple[str, dict[str, Any], Expect, Expect, float]] = [
    ("drop-mid-stream", {"kind": "drop_mid_stream", "after_chunks": 2}, "either", "fail", 10.0),
    ("drop-at-first-event", {"kind": "drop_mid_stream", "after_chunks": 0}, "complete", "fail",
     10.0),
    ("cut-before-done", {"kind": "cut_before_done"}, "either", "fail", 10.0),
    ("slow-past-timeout", {"kind": "slow", "delay": 2.0}, "complete", "fail", SHORT),
]


@STREAMED
@SCHEDULE
@pytest.mark.parametrize(("fault", "once", "always_", "timeout"),
                         [row[1:] for row in SIM_TRANSPORT_ROWS],
                         ids=[row[0] for row in SIM_TRANSPORT_ROWS])
async def test_simulator_transport_faults(fresh: Stage, streamed: bool, always: bool,
                                          fault: dict[str, Any], once: Expect, always_: Expect,
                                          timeout: float) -> None:
    fresh.sim.inject(None, always=always, **fault)
    await cell(fresh, streamed, always_ if always else once, timeout=timeout)


# --------------------------------------------------------------------------- malformed answers

_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
          "model": "kimi-k2-6"}


def _sse(*events: str) -> bytes:
    return "".join(f"data: {event}\n\n" for event in events).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps({**_CHUNK, "choices": [{"index": 0, "delta": delta,
                                               "finish_reason": finish}]}, ensure_ascii=False)


SSE = {"Content-Type": "text/event-stream"}
HELLO = _chunk({"role": "assistant", "content": ""})
TEXT = _chunk({"content": "您好，"})
MALFORMED_ROWS: list[tuple[str, bytes, dict[str, str], Expect, Expect]] = [
    # id, 200 body, headers, once, always
    ("not-json", b"{\"id\": \"x\", \"choi", {}, "complete", "fail"),
    ("json-not-a-completion", b'{"hello": "world"}', {}, "complete", "fail"),
    ("no-choices", b'{"id": "x", "object": "chat.completion", "choices": []}', {},
     "complete", "fail"),
    ("html", b"<html><body>Welcome to nginx!</body></html>", {"Content-Type": "text/html"},
     "complete", "fail"),
    ("empty-body", b"", {}, "complete", "fail"),
    ("invalid-utf8", b'{"choices": [{"message": {"content": "\xff\xfe"}}]}', {},
     "either", "either"),
    ("sse-garbage-frame", _sse(HELLO, "{not json"), SSE, "complete", "fail"),
    ("sse-chunk-of-wrong-shape", _sse(HELLO, '{"choices": "many"}'), SSE, "complete", "fail"),
    ("sse-error-frame-first", _sse('{"error": {"type": "server_error", "message": "upstream '
                                   'failed"}}'), SSE, "complete", "fail"),
    ("sse-error-frame-mid-answer", _sse(HELLO, TEXT, '{"error": {"type": "server_error", '
                                        '"message": "upstream failed"}}'), SSE,
     "either", "fail"),
    ("sse-no-done", _sse(HELLO, TEXT, _chunk({}, "stop")), SSE, "either", "fail"),
    ("sse-empty-stream", b"", SSE, "complete", "fail"),
    ("sse-only-done", _sse("[DONE]"), SSE, "either", "fail"),
    ("sse-comments-and-blank-frames", b": keep-alive\n\ndata:\n\n" + _sse(
        HELLO, TEXT, _chunk({}, "stop"), "[DONE]"), SSE, "complete", "complete"),
    ("sse-bom-first", b"\xef\xbb\xbf" + _sse(HELLO, TEXT, _chunk({}, "stop"), "[DONE]"), SSE,
     "complete", "complete"),
]


@STREAMED
@SCHEDULE
@pytest.mark.parametrize(("body", "headers", "once", "always_"),
                         [row[1:] for row in MALFORMED_ROWS],
                         ids=[row[0] for row in MALFORMED_ROWS])
async def test_malformed_answers(fresh: Stage, streamed: bool, always: bool, body: bytes,
                                 headers: dict[str, str], once: Expect, always_: Expect) -> None:
    if not streamed and once != "either":
        # A non-streamed 2xx is never sent again: the gateway bills every 2xx ("retrying
        # after a 200 will charge twice"), so a malformed one is a typed error, even once.
        # (An event stream is a malformed answer to a JSON request.)
        once, always_ = "fail", "fail"
    fresh.proxy.inject("respond", always=always, body=body, headers=headers)
    await cell(fresh, streamed, always_ if always else once)


# --------------------------------------------------------------------------- the model's replies

def _once_then_shop(first: Reply) -> Callable[[SimRequest], Reply]:
    used = []

    def responder(request: SimRequest) -> Reply:
        if not used:
            used.append(1)
            return first
        return shop(request)
    return responder


def _dup(_: SimRequest) -> Reply:
    return Reply(reasoning="查两个", tool_calls=[
        ToolCallSpec("get_order", {"order_id": "A1"}, id="get_order:0"),
        ToolCallSpec("get_order", {"order_id": "A2"}, id="get_order:0")])


def _empty_id(_: SimRequest) -> Reply:
    return Reply(reasoning="查", tool_calls=[ToolCallSpec("get_order", {"order_id": "A1"}, id="")])


def _bad_json(_: SimRequest) -> Reply:
    return Reply(reasoning="查", tool_calls=[("get_order", '{"order_id": "A1",')])


def _wrong_type(_: SimRequest) -> Reply:
    return Reply(reasoning="查", tool_calls=[("get_order", {"order_id": ["A1"], "多余": 1})])


def _deep(_: SimRequest) -> Reply:
    return Reply(reasoning="查", tool_calls=[
        ("get_order", '{"order_id": ' + "[" * 100_000 + "]" * 100_000 + "}")])


def _huge_int(_: SimRequest) -> Reply:
    return Reply(reasoning="查", tool_calls=[("get_order", '{"order_id": ' + "9" * 5000 + "}")])


def _unknown_tool(_: SimRequest) -> Reply:
    return Reply(reasoning="查", tool_calls=[("cancel_order", {"order_id": "A1"})])


def _think_only(_: SimRequest) -> Reply:
    return Reply(reasoning="让我想想……")


def _length(_: SimRequest) -> Reply:
    return Reply(reasoning="想了很久", finish_reason="length")


REPLY_ROWS: list[tuple[str, Callable[[SimRequest], Reply], Expect, Expect]] = [
    ("duplicate-ids", _dup, "complete", "fail"),
    ("empty-id", _empty_id, "complete", "fail"),
    ("arguments-not-json", _bad_json, "complete", "fail"),
    ("arguments-wrong-type", _wrong_type, "complete", "fail"),
    ("arguments-nested-too-deep", _deep, "complete", "fail"),
    ("arguments-huge-integer", _huge_int, "complete", "fail"),
    ("unknown-tool", _unknown_tool, "complete", "fail"),
    ("think-only-reply", _think_only, "complete", "fail"),
    ("length-inside-reasoning", _length, "fail", "fail"),
]


@STREAMED
@SCHEDULE
@pytest.mark.parametrize(("responder", "once", "always_"), [row[1:] for row in REPLY_ROWS],
                         ids=[row[0] for row in REPLY_ROWS])
async def test_replies_that_cannot_be_used_as_they_are(
        fresh: Stage, streamed: bool, always: bool, responder: Callable[[SimRequest], Reply],
        once: Expect, always_: Expect) -> None:
    fresh.responder = responder if always else _once_then_shop(responder(None))  # type: ignore[arg-type]
    await cell(fresh, streamed, always_ if always else once)


async def test_a_leading_bom_does_not_hide_the_first_event(fresh: Stage) -> None:
    body = b"\xef\xbb\xbf" + _sse(_chunk({"role": "assistant", "content": "您好，"}),
                                   _chunk({"content": "请讲。"}), _chunk({}, "stop"), "[DONE]")
    fresh.proxy.inject("respond", body=body, headers=SSE)
    async with make_client(fresh.url, fresh.sim.api_key) as client:
        async with Agent(client=client).stream("你好") as run:
            async for _ in run:
                pass
    assert run.result.output == "您好，请讲。"


async def test_a_lone_surrogate_in_the_prompt_is_not_an_untyped_error(fresh: Stage) -> None:
    await cell(fresh, False, "either", prompt="订单 A1024 \ud800 到哪了？")


# --------------------------------------------------------------------------- tools

class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


class _Opaque:
    """A result nothing can serialise: its repr fails too."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@tool
def raises(order_id: str) -> str:
    """总是失败的查询。

    Args:
        order_id: 订单号。
    """
    raise ValueError(f"订单 {order_id} 查询失败：数据库不可用")


@tool
def raises_unprintable(order_id: str) -> str:
    """失败且异常无法打印。

    Args:
        order_id: 订单号。
    """
    raise _Unprintable()


@tool
async def raises_cancelled(order_id: str) -> str:
    """抛出 CancelledError 但并未被取消。

    Args:
        order_id: 订单号。
    """
    raise anyio.get_cancelled_exc_class()()


@tool
async def hangs(order_id: str) -> str:
    """永远不返回（异步）。

    Args:
        order_id: 订单号。
    """
    await anyio.sleep(3600)
    return "never"


@tool
def blocks(order_id: str) -> str:
    """阻塞线程一秒多（同步）。

    Args:
        order_id: 订单号。
    """
    time.sleep(1.2)
    return "late"


@tool
def huge(order_id: str) -> str:
    """返回 10 MB 的结果。

    Args:
        order_id: 订单号。
    """
    return "物流记录" * 2_500_000


@tool
def unserialisable(order_id: str) -> Any:
    """返回无法序列化的对象。

    Args:
        order_id: 订单号。
    """
    return {"订单": order_id, "对象": _Opaque(), "集合": {1, 2}}


@tool
def circular(order_id: str) -> Any:
    """返回自引用的字典。

    Args:
        order_id: 订单号。
    """
    loop: dict[str, Any] = {"订单": order_id}
    loop["自己"] = loop
    return loop


TOOL_ROWS = [
    raises,
    raises_unprintable,
    raises_cancelled,
    hangs,
    blocks,
    huge,
    unserialisable,
    circular,
]


def _calls(*names: str) -> Callable[[SimRequest], Reply]:
    def responder(request: SimRequest) -> Reply:
        if request.tool_results:
            return shop(request)
        return Reply(reasoning="调用工具", tool_calls=[(n, {"order_id": f"A{i}00"})
                                                     for i, n in enumerate(names)])
    return responder


@STREAMED
@pytest.mark.parametrize("parallel", [False, True], ids=["alone", "with-siblings"])
@pytest.mark.parametrize("bad", TOOL_ROWS, ids=lambda t: getattr(t, "name", None))
async def test_tools_that_fail(fresh: Stage, streamed: bool, parallel: bool, bad: Any) -> None:
    """A failing tool is a result the model reads; its siblings' results are kept."""
    names = ["get_order", bad.name, "get_order"] if parallel else [bad.name]
    fresh.responder = _calls(*names)
    _, session = await cell(fresh, streamed, "complete", tools=[get_order, bad])
    results = [m for m in await session.get_items() if isinstance(m, ToolMessage)]
    first_step = results[:len(names)]
    assert len(first_step) == len(names)
    for message, name in zip(first_step, names, strict=True):
        if name == "get_order":
            assert "运输中" in message.content
        if name == "blocks":   # its thread may still finish the work: never "try again"
            assert "unknown" in message.content.lower(), message.content
    assert all(len(m.content) < 1_000_000 for m in results), "a tool result was not capped"


@STREAMED
async def test_a_tool_that_keeps_failing_ends_with_a_typed_error(fresh: Stage, streamed: bool
                                                                 ) -> None:
    fresh.responder = lambda request: Reply(reasoning="再试", tool_calls=[("raises",
                                                                          {"order_id": "A1"})])
    await cell(fresh, streamed, "fail", tools=[raises])


# --------------------------------------------------------------------------- cancellation

@tool
async def lookup(order_id: str) -> str:
    """慢查询。

    Args:
        order_id: 订单号。
    """
    await anyio.sleep(0.05)
    return f"{order_id} 运输中"


def _two_steps(request: SimRequest) -> Reply:
    if request.tool_results and request.turn >= 2:
        return Reply(text="两步都查好了", reasoning="完成")
    return Reply(reasoning="查", tool_calls=[("lookup", {"order_id": f"A{request.turn}"}),
                                            ("lookup", {"order_id": f"B{request.turn}"})])


CANCEL_POINTS = [round(random.Random(13 + i).uniform(0.0, 0.35), 3) for i in range(8)]


@STREAMED
@pytest.mark.parametrize("after", CANCEL_POINTS)
async def test_cancellation_at_random_points(fresh: Stage, streamed: bool, after: float
                                             ) -> None:
    fresh.responder = _two_steps
    fresh.sim.latency = Latency(first_token=0.03, tokens_per_second=2000)
    session = MemorySession("取消")
    prompt = "查两个订单，分两步"
    async with make_client(fresh.url, fresh.sim.api_key) as client:
        agent = Agent(tools=[lookup], client=client, run_timeout=20)
        with anyio.move_on_after(after) as scope:
            error = await play(agent, prompt, session, streamed, cancellable=True)
            assert_outcome(error, "complete")
        stored = [m for m in await session.get_items()]
        await assert_session_good(fresh, agent, session, prompt, kept=bool(stored))
    assert scope.cancelled_caught or error is None
