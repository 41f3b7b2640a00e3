"""`ChatStream`: one streamed reply, as typed chunks and then as a whole `ChatCompletion`.

The stream is complete only at `data: [DONE]`: a body that ends before it, or a connection
that drops, is an error. A frame `data: {"error": {...}}` is the gateway's terminal error
frame (the model failed mid-stream): it raises the typed error its `code` / `type` says, with
what arrived so far on `error.partial`. A stream that ends without a single choice is an
`EmptyReplyError`. While nothing of the reply has reached the caller, a failure is retried
like a non-streamed request; once a chunk with content has been handed over, the error
surfaces and what arrived stays readable through `partial`.

It talks to the gateway only through the client's `Transport` (docs: architecture).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from kimi_agent.errors import (
    EmptyReplyError,
    GatewayError,
    IncompleteStreamError,
    ResponseFormatError,
)
from kimi_agent.gateway._assembler import StreamAssembler
from kimi_agent.gateway._errors import error_from_response
from kimi_agent.gateway._headers import call_info
from kimi_agent.gateway._parse import parse_completion
from kimi_agent.gateway._retry import RetryState
from kimi_agent.gateway._sse import DONE
from kimi_agent.gateway._transport import Exchange, Transport
from kimi_agent.wire import (
    CallInfo,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    ToolCallDelta,
)

__all__ = ["DONE", "ChatStream"]


class ChatStream:
    """Iterate for `ChatCompletionChunk`s; afterwards `completion` is the assembled reply.

    Use as `async with client.stream(request) as stream:`; leaving the block closes the
    connection (and frees its limiter slots) even when iteration stopped early.
    """

    def __init__(self, transport: Transport, model: str, body: bytes) -> None:
        self._transport = transport
        self.model = model
        self._body = body
        self._assembler = StreamAssembler()
        self._completion: ChatCompletion | None = None
        self.started = False
        """True once a chunk with reasoning, text or a tool call reached the caller."""
        self.request_id: str | None = None
        self.call_info: CallInfo | None = None
        """Ids and spend / quota headers of the attempt that answered."""
        self._iterator: AsyncGenerator[ChatCompletionChunk, None] | None = None
        self._attempts = 0

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream and close its connection now (idempotent)."""
        if self._iterator is not None:
            await self._iterator.aclose()

    @property
    def completion(self) -> ChatCompletion:
        """The assembled reply; only once the stream ended with `[DONE]`.

        Raises:
            RuntimeError: the stream has not completed.
        """
        if self._completion is None:
            raise RuntimeError("the stream has not completed yet: iterate it to the end first")
        return self._completion

    @property
    def partial(self) -> ChatCompletion:
        """What arrived so far (e.g. after an error mid-stream)."""
        return self._completion or self._assembler.completion()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        """The chunks, once.

        Raises:
            RuntimeError: the stream is iterated a second time.
        """
        if self._iterator is not None or self._completion is not None:
            raise RuntimeError("a ChatStream can be iterated only once")
        self._iterator = self._iterate()
        return self._iterator

    async def _iterate(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        transport = self._transport
        state = RetryState(transport.retry)
        while True:
            self._attempts += 1
            state.attempts = self._attempts
            try:
                async with aclosing(self._attempt()) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            except GatewayError as error:
                delay = None if self.started else state.next_delay(error)
                transport.log_failure(self.model, error, self._attempts, final=delay is None,
                                      delay=delay)
                if delay is None:
                    if self.started and error.partial is None:
                        error.partial = self.partial
                    raise
                await transport.retry.sleep(delay)
                self._assembler = StreamAssembler()

    async def _attempt(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        transport = self._transport
        async with transport.open_stream(self.model, self._body) as exchange:
            response = exchange.response
            self.call_info = call_info(response.headers, model=self.model,
                                       status=response.status_code, stream=True,
                                       attempts=self._attempts)
            self.request_id = self.call_info.request_id
            if "text/event-stream" not in response.headers.get("content-type", ""):
                chunk = await self._non_stream_reply(exchange)
                self._assembler.feed(chunk)
                self.started = True
                yield chunk
                self._finish(exchange)
                return
            saw_choice = False
            async with aclosing(transport.events(exchange, self.model,
                                                 self.request_id)) as events:
                async for data in events:
                    if data == DONE:
                        if not saw_choice:
                            raise EmptyReplyError(
                                "the stream ended without any choice: no reply at all",
                                model=self.model, request_id=self._best_id(),
                                call=self.call_info)
                        self._finish(exchange)
                        return
                    if not data.strip():
                        continue
                    chunk = self._parse_chunk(data, response.headers)
                    self._assembler.feed(chunk)
                    saw_choice = saw_choice or bool(chunk.choices)
                    if not self.started and _has_payload(chunk):
                        self.started = True
                    yield chunk
        raise IncompleteStreamError(
            "the stream ended before [DONE]: the reply is incomplete",
            model=self.model, request_id=self._best_id(), call=self.call_info,
        )

    def _best_id(self) -> str | None:
        return self.request_id or self._assembler.id or None

    def _parse_chunk(self, data: str, headers: Any) -> ChatCompletionChunk:
        if '"error"' not in data:
            # The common case in one pass of pydantic-core's JSON parser; anything it
            # refuses (control characters in strings, an error frame) takes the path below.
            try:
                return ChatCompletionChunk.model_validate_json(data)
            except (ValidationError, ValueError):
                pass
        try:
            payload = json.loads(data, strict=False)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("error") is not None:
            error = error_from_response(None, headers, payload, model=self.model, stream=True,
                                        request_id=self._best_id())
            if self.started:
                error.partial = self.partial
            raise error
        try:
            return ChatCompletionChunk.model_validate(payload) if isinstance(
                payload, dict) else ChatCompletionChunk.model_validate_json(data)
        except (ValidationError, ValueError):
            pass
        raise ResponseFormatError(
            f"the stream carried an event that is not a chunk: {data[:200]!r}",
            model=self.model, request_id=self._best_id(), call=self.call_info,
        )

    async def _non_stream_reply(self, exchange: Exchange) -> ChatCompletionChunk:
        """A server that ignored `stream: true` and sent one JSON reply: tolerate it."""
        response = exchange.response
        content = await self._transport.read_body(exchange, self.model)
        completion = parse_completion(content, response.headers, self.model, final=False)
        message = completion.message
        return ChatCompletionChunk(
            id=completion.id,
            model=completion.model,
            choices=[
                ChunkChoice(
                    delta=ChunkDelta(
                        role="assistant",
                        content=message.content,
                        reasoning_content=message.reasoning_content,
                        tool_calls=[
                            ToolCallDelta.model_validate(
                                {"index": i, "id": call.id, "type": "function",
                                 "function": call.function.model_dump()}
                            )
                            for i, call in enumerate(message.tool_calls or ())
                        ] or None,
                    ),
                    finish_reason=completion.finish_reason,
                    usage=completion.usage,
                )
            ],
        )

    def _finish(self, exchange: Exchange) -> None:
        completion = self._assembler.completion()
        if completion.model:
            completion.choices[0].message.model = completion.model
        else:
            completion.model = self.model
            completion.choices[0].message.model = self.model
        # the headers were read when the stream opened: only the body's id and the time are new
        opened = self.call_info
        latency = time.perf_counter() - exchange.started
        if opened is not None and (opened.request_id or not completion.id):
            ids = {**opened.request_ids, "id": completion.id} if completion.id else \
                opened.request_ids
            info = replace(opened, latency_s=latency, request_ids=ids)
        else:
            response = exchange.response
            info = call_info(response.headers, model=self.model, status=response.status_code,
                             stream=True, body_id=completion.id or None,
                             attempts=self._attempts, latency_s=latency)
        self.call_info = info
        completion._call_info = info
        self._completion = completion
        self._transport.log_call(info, completion.usage)


def _has_payload(chunk: ChatCompletionChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.reasoning_content or delta.tool_calls:
            return True
    return False
