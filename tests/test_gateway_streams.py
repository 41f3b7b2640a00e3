"""Streams against a raw scripted server: the gateway's terminal error frame, streams with no
choice, a leading BOM, connection reuse after [DONE], deterministic close, the idle time-out."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kimi_agent import Agent, GatewayClient, RetryPolicy
from kimi_agent.errors import (
    ConcurrencyLimitError,
    ContextLengthError,
    EmptyReplyError,
    GatewayTimeoutError,
    ModelFailedError,
    ServerError,
)
from kimi_agent.gateway._sse import SSEParser
from kimi_agent.wire import ChatRequest
from tests.gatewaykit import Sleeps, answer_ok, chunk, policy, run_agent, text_events
from tests.scripted_http import Answer, ScriptedServer

pytestmark = pytest.mark.anyio

KEY = "sk-byts-test-0123456789"


def request() -> ChatRequest:
    return ChatRequest(model="kimi-k2-6", messages=[{"role": "user", "content": "讲个故事"}])


def error_frame(message: str, *, code: str | None = None,
                error_type: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"message": message}
    if code:
        error["code"] = code
    if error_type:
        error["type"] = error_type
    return {"error": error}


@pytest.mark.parametrize("done_after", [False, True], ids=["closed", "then-done"])
async def test_terminal_error_frame_after_text_raises_typed_error_with_partial(
    done_after: bool,
) -> None:
    events = text_events("从前有座山，山里有座庙")[:4]
    events.append(error_frame("the model failed mid-stream", error_type="server_error"))
    server = ScriptedServer([Answer(events=events, done=done_after),
                             answer_ok("不该被请求", streamed=True)])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as client:
        with pytest.raises(ModelFailedError) as caught:
            await run_agent(Agent(client=client), "讲个故事", streamed=True)
    cause = caught.value.cause
    assert isinstance(cause, ServerError)
    assert "mid-stream" in cause.message
    assert cause.request_id == "chatcmpl-s1", "the stream's id names the call"
    partial = caught.value.partial
    assert partial is not None and partial.message.content == "从前有座山，山里"
    assert partial.message.reasoning_content == "想一想"
    assert len(server.requests) == 1, "not retried, not fallen over: the caller saw text"


async def test_error_frame_before_any_content_is_typed_and_falls_over() -> None:
    frame = error_frame("prompt too long", code="context_length_exceeded")
    server = ScriptedServer([
        Answer(events=[chunk({"role": "assistant", "content": ""}), frame], done=False),
        answer_ok("长文档的回答", streamed=True, model="kimi-k2-5"),
    ])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as client:
        result, seen = await run_agent(Agent(client=client), "长文档", streamed=True)
    assert seen == "长文档的回答"
    assert result.steps[0].model == "kimi-k2-5"
    assert ContextLengthError.__name__ in (result.steps[0].fallback_reason or "")


async def test_concurrency_error_frame_before_content_is_retried_on_the_same_model() -> None:
    frame = error_frame("too many in flight", code="concurrency_limit",
                        error_type="rate_limit_error")
    sleeps = Sleeps()
    server = ScriptedServer([Answer(events=[frame], done=False),
                             answer_ok("好的", streamed=True)])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(sleeps)) as client:
        async with client.stream(request()) as stream:
            _ = [c async for c in stream]
    assert stream.completion.message.content == "好的"
    assert len(sleeps.calls) == 1 and 1.0 <= sleeps.calls[0] <= 3.0
    assert [r.json()["model"] for r in server.requests] == ["kimi-k2-6"] * 2


async def test_error_frame_raised_from_the_client_stream_keeps_partial() -> None:
    events = text_events("您好，订单")[:3]
    events.append(error_frame("cap", code="concurrency_limit", error_type="rate_limit_error"))
    server = ScriptedServer([Answer(events=events, done=False)])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as client:
        async with client.stream(request()) as stream:
            with pytest.raises(ConcurrencyLimitError) as caught:
                async for _ in stream:
                    pass
    assert caught.value.partial is not None
    assert caught.value.partial.message.content == "您好，订"


async def test_a_stream_without_any_choice_is_an_empty_reply_retried_once() -> None:
    no_choice = Answer(events=[{"id": "chatcmpl-e", "object": "chat.completion.chunk",
                                "choices": [], "usage": {"prompt_tokens": 5,
                                                         "completion_tokens": 0,
                                                         "total_tokens": 5}}])
    server = ScriptedServer([no_choice, no_choice, answer_ok("不该到这里", streamed=True)])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as client:
        with pytest.raises(ModelFailedError) as caught:
            await run_agent(Agent(client=client), "你好", streamed=True)
    assert isinstance(caught.value.cause, EmptyReplyError)
    assert caught.value.cause.request_id == "chatcmpl-e"
    assert [r.json()["model"] for r in server.requests] == ["kimi-k2-6"] * 2, (
        "retried once, never fallen over, never committed as an answer")


async def test_a_non_streamed_reply_without_choices_is_empty_and_never_retried() -> None:
    server = ScriptedServer([Answer(200, {"id": "chatcmpl-0", "choices": []}),
                             answer_ok("不该到这里", streamed=False)])
    async with server.serve() as url, GatewayClient(url, KEY, retry=policy(Sleeps())) as client:
        with pytest.raises(ModelFailedError) as caught:
            await Agent(client=client).run("你好")
    assert isinstance(caught.value.cause, EmptyReplyError)
    assert len(server.requests) == 1, "a 2xx is charged: never sent again"


async def test_a_leading_byte_order_mark_is_dropped() -> None:
    events = text_events("你好呀")
    server = ScriptedServer([Answer(events=events[2:], prefix=b"\xef\xbb\xbf")])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        async with client.stream(request()) as stream:
            _ = [c async for c in stream]
    assert stream.completion.message.content == "你好呀", "the first event is not lost"


async def test_streamed_calls_reuse_one_connection() -> None:
    server = ScriptedServer([answer_ok(f"第{i}次", streamed=True) for i in range(5)]
                            + [Answer(events=text_events("尾巴"), tail=b": keep-alive\n\n")])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        for _ in range(6):
            async with client.stream(request()) as stream:
                _ = [c async for c in stream]
        agent = Agent(client=client)
        server.answers = [answer_ok("代理", streamed=True) for _ in range(3)]
        for _ in range(3):
            await run_agent(agent, "你好", streamed=True)
    assert len(server.requests) == 9
    assert server.connections == 1, "the body is read to its end after [DONE]"


async def test_leaving_the_stream_block_early_closes_the_connection_now() -> None:
    server = ScriptedServer([Answer(events=text_events("很长的回答" * 50), stall_after=8)])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        async with client.stream(request()) as stream:
            async for _ in stream:
                break
        assert client.pool_limiter.in_flight == 0, "the slot is free as the block ends"
        with anyio.fail_after(10):
            await server.wait_closed_connection()
    assert server.closed == 1


@pytest.mark.parametrize("headers_timeout", [60.0, 0.3], ids=["ours", "library-read"])
async def test_a_silent_stream_is_an_idle_timeout_with_partial_text(
    headers_timeout: float,
) -> None:
    server = ScriptedServer([Answer(events=text_events("从前有座山，山里"), stall_after=4)])
    async with server.serve() as url, GatewayClient(url, KEY, idle_timeout=0.3,
                                                   headers_timeout=headers_timeout,
                                                   retry=RetryPolicy(max_retries=0)) as client:
        stream = client.stream(request())
        async with stream:
            with pytest.raises(GatewayTimeoutError) as caught:
                async for _ in stream:
                    pass
    assert caught.value.phase == "idle"
    assert caught.value.partial is not None
    assert caught.value.partial.message.content == "从前有座山，山里"


async def test_silent_before_headers_is_a_headers_timeout_not_retried_by_default() -> None:
    sleeps = Sleeps()
    server = ScriptedServer([Answer(silent=True), answer_ok("终于", streamed=True)])
    async with server.serve() as url, GatewayClient(url, KEY, headers_timeout=0.3,
                                                   retry=policy(sleeps)) as client:
        with pytest.raises(GatewayTimeoutError) as caught:
            async with client.stream(request()) as stream:
                _ = [c async for c in stream]
    assert caught.value.phase == "headers" and len(server.requests) == 1
    assert sleeps.calls == [], "the other model is tried next, not this one again"


async def test_timeout_retries_can_be_allowed() -> None:
    sleeps = Sleeps()
    server = ScriptedServer([Answer(silent=True), answer_ok("终于", streamed=True)])
    async with server.serve() as url, GatewayClient(
            url, KEY, headers_timeout=0.3,
            retry=policy(sleeps, max_timeout_retries=1)) as client:
        async with client.stream(request()) as stream:
            _ = [c async for c in stream]
    assert stream.completion.message.content == "终于"
    assert len(sleeps.calls) == 1


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    parts, last = [], 0
    for p in points:
        parts.append(data[last:p])
        last = p
    parts.append(data[last:])
    return parts


@given(
    st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                            blacklist_categories=("Cs",)), max_size=20),
             min_size=1, max_size=6),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_sse_parser_reads_any_split_and_line_ending(
    datas: list[str], newline: str, bom: bool, cuts: list[int]
) -> None:
    import codecs

    text = ("\ufeff" if bom else "") + ": comment" + newline
    for data in datas:
        text += f"event: x{newline}data: {data}{newline}id: 1{newline}{newline}"
    raw = text.encode()
    decoder = codecs.getincrementaldecoder("utf-8")()
    parser = SSEParser()
    seen: list[str] = []
    for part in _split(raw, cuts):
        seen += parser.feed(decoder.decode(part))
    seen += parser.feed(decoder.decode(b"", final=True))
    assert seen == datas


async def test_a_server_that_ignores_stream_true_is_tolerated() -> None:
    server = ScriptedServer([answer_ok("一次性回答", streamed=False,
                                       headers={"X-Quota-Remaining-Credits": "12"})])
    async with server.serve() as url, GatewayClient(url, KEY) as client:
        async with client.stream(request()) as stream:
            chunks = [c async for c in stream]
    assert len(chunks) == 1
    assert stream.completion.message.content == "一次性回答"
    assert stream.call_info is not None and stream.call_info.quota_remaining_credits == 12
    assert server.connections == 1
