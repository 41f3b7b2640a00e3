"""Property tests of the streamed reply (issue 13): any valid Kimi stream, cut into bytes at
any points, with either line ending, assembles into the reply it carried; a stream with a
malformed frame or cut short ends with a typed `GatewayError`, never another exception.

The bytes come through `GatewayClient` and the HTTP library's own parser; the response is
served by the library's `MockTransport` because chunk boundaries cannot be forced over TCP
(the loopback tests of the fault matrix cover the socket)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_agent import GatewayClient, RetryPolicy
from kimi_agent.errors import GatewayError
from kimi_agent.wire import ChatCompletion, ChatCompletionChunk

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
NAMES = st.sampled_from(["get_order", "查询_库存", "refund-1"])
ARGS = st.dictionaries(st.sampled_from(["order_id", "数量", "note"]),
                       st.one_of(TEXT, st.integers(-10**6, 10**6), st.booleans()), max_size=3)


@st.composite
def replies(draw: st.DrawFn) -> dict[str, Any]:
    calls = draw(st.lists(st.tuples(NAMES, ARGS), max_size=3))
    return {"reasoning": draw(TEXT), "content": draw(TEXT),
            "calls": [(f"{name}:{i}", name, json.dumps(args, ensure_ascii=False))
                      for i, (name, args) in enumerate(calls)]}


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    if not text:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=4))))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _frame(delta: dict[str, Any], finish: str | None = None,
           usage: dict[str, int] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if usage is not None:
        choice["usage"] = usage
    return {"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1,
            "model": "kimi-k2-6", "choices": [choice]}


@st.composite
def streams(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A reply and the events Kimi would stream for it (reasoning first, calls by index)."""
    reply = draw(replies())
    events = [_frame({"role": "assistant", "content": ""})]
    events += [_frame({"reasoning_content": p}) for p in _pieces(draw, reply["reasoning"])]
    events += [_frame({"content": p}) for p in _pieces(draw, reply["content"])]
    for index, (call_id, name, arguments) in enumerate(reply["calls"]):
        events.append(_frame({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                              "function": {"name": name, "arguments": ""}}]}))
        events += [_frame({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                   for p in _pieces(draw, arguments)]
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    events.append(_frame({}, "tool_calls" if reply["calls"] else "stop", usage))
    if draw(st.booleans()):
        events.append({"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1,
                       "model": "kimi-k2-6", "choices": [], "usage": usage})
    return reply, events


def _encode(events: list[Any], newline: str, done: bool = True) -> bytes:
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
    if done:
        lines.append("[DONE]")
    return "".join(f"data: {line}{newline}{newline}" for line in lines).encode()


def _split(draw: st.DrawFn, body: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=12))))
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def _stream(chunks: list[bytes]) -> ChatCompletion:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               stream=_Chunks(chunks))

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http, \
            GatewayClient("http://gateway.test/v1", "sk-test", http_client=http,
                          retry=RetryPolicy(max_retries=0)) as client:
        request = {"model": "kimi-k2-6", "messages": [{"role": "user", "content": "你好"}]}
        async with client.stream(request) as stream:
            async for _ in stream:
                pass
        return stream.completion


SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(data=st.data(), stream=streams(), newline=st.sampled_from(["\n", "\r\n"]))
def test_any_chunking_of_a_valid_stream_assembles_the_reply(
        data: st.DataObject, stream: tuple[dict[str, Any], list[dict[str, Any]]],
        newline: str) -> None:
    reply, events = stream
    split = _split(data.draw, _encode(events, newline))
    completion = anyio.run(_stream, split)
    message = completion.message
    assert (message.content or "") == reply["content"]
    assert (message.reasoning_content or "") == reply["reasoning"]
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]
    assert calls == [(i, n, a or "{}") for i, n, a in reply["calls"]]
    assert completion.usage is not None and completion.usage.total_tokens == 18


FRAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                 min_size=1, max_size=30)


@SETTINGS
@given(data=st.data(), stream=streams(), junk=FRAMES, done=st.booleans())
def test_a_malformed_frame_or_a_cut_stream_is_a_typed_error(
        data: st.DataObject, stream: tuple[dict[str, Any], list[dict[str, Any]]], junk: str,
        done: bool) -> None:
    _, events = stream
    at = data.draw(st.integers(0, len(events)))
    broken: list[Any] = [*events[:at], junk, *events[at:]]
    split = _split(data.draw, _encode(broken, "\n", done=done))
    try:
        anyio.run(_stream, split)
    except GatewayError:
        return
    # Only a junk frame that is `[DONE]` itself, blank (a `data:` line of whitespace only is
    # an empty frame, skipped), or happens to be a valid chunk in a stream that does end with
    # `[DONE]`, may be taken as such.
    assert junk == "[DONE]" or not junk.strip() or (done and _is_chunk(junk))


def _is_chunk(text: str) -> bool:
    try:
        ChatCompletionChunk.model_validate_json(text)
    except ValueError:
        return False
    return True
