"""`ChatStream`: one streamed reply, as typed chunks and then as a whole `ChatCompletion`.

The stream is complete only at `data: [DONE]`: a body that ends before it, or a connection
that drops, is an error. While nothing of the reply has reached the caller, a failure is
retried like a non-streamed request (the gateway's retry policy); once a chunk with content
has been handed over, the error surfaces and what arrived so far stays readable through
`partial`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from kimi_agent._logging import resolve
from kimi_agent.errors import (
    GatewayError,
    IncompleteStreamError,
    ResponseFormatError,
)
from kimi_agent.gateway import _http
from kimi_agent.gateway._assembler import StreamAssembler
from kimi_agent.gateway._errors import error_from_response, request_ids
from kimi_agent.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from kimi_agent.gateway._client import GatewayClient

DONE = "[DONE]"


class ChatStream:
    """Iterate for `ChatCompletionChunk`s; afterwards `completion` is the assembled reply."""

    def __init__(self, client: GatewayClient, model: str, body: bytes) -> None:
        self._client = client
        self.model = model
        self._body = body
        self._assembler = StreamAssembler()
        self._completion: ChatCompletion | None = None
        self.started = False
        """True once a chunk with reasoning, text or a tool call reached the caller."""
        self.request_id: str | None = None
        self._iterating = False

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def completion(self) -> ChatCompletion:
        """The assembled reply; only once the stream ended with `[DONE]`."""
        if self._completion is None:
            raise RuntimeError("the stream has not completed yet: iterate it to the end first")
        return self._completion

    @property
    def partial(self) -> ChatCompletion:
        """What arrived so far (e.g. after an error mid-stream)."""
        return self._completion or self._assembler.completion()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._iterating or self._completion is not None:
            raise RuntimeError("a ChatStream can be iterated only once")
        self._iterating = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        policy = self._client.retry
        first_attempt = policy.clock()
        retry_index = 0
        while True:
            try:
                async for chunk in self._attempt():
                    yield chunk
                return
            except GatewayError as error:
                delay = None if self.started else policy.delay_for(error, retry_index)
                if delay is None or policy.clock() - first_attempt + delay > policy.deadline:
                    self._client._log_failure(self.model, error, retry_index + 1, final=True)
                    raise
                self._client._log_failure(self.model, error, retry_index + 1, final=False,
                                          delay=delay)
                await policy.sleep(delay)
                retry_index += 1
                self._assembler = StreamAssembler()

    async def _attempt(self) -> AsyncIterator[ChatCompletionChunk]:
        started_at = time.perf_counter()
        assembler = self._assembler
        model = self.model
        async with self._client.open_stream(model, self._body) as response:
            self.request_id = request_ids(response.headers)[0]
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                chunk = await self._non_stream_reply(response)
                assembler.feed(chunk)
                self.started = True
                yield chunk
                self._finish(started_at)
                return
            async with aclosing(_http.sse_data(response)) as events:
                async for data in events:
                    if data == DONE:
                        self._finish(started_at)
                        return
                    if not data:
                        continue
                    chunk = self._parse_chunk(data, response)
                    assembler.feed(chunk)
                    if not self.started and _has_payload(chunk):
                        self.started = True
                    yield chunk
        raise IncompleteStreamError(
            "the stream ended before [DONE]: the reply is incomplete",
            model=model, request_id=self.request_id,
        )

    def _parse_chunk(self, data: str, response: _http.Response) -> ChatCompletionChunk:
        try:
            return ChatCompletionChunk.model_validate_json(data)
        except (ValidationError, ValueError):
            pass
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            error = payload["error"]
            kind = str(error.get("type", "")) if isinstance(error, dict) else ""
            status = 429 if ("rate_limit" in kind or "overloaded" in kind) else 500
            raise error_from_response(status, response.headers, data, model=self.model)
        raise ResponseFormatError(
            f"the stream carried an event that is not a chunk: {data[:200]!r}",
            model=self.model, request_id=self.request_id,
        )

    async def _non_stream_reply(self, response: _http.Response) -> ChatCompletionChunk:
        """A server that ignored `stream: true` and sent one JSON reply: tolerate it."""
        from kimi_agent.gateway._client import parse_completion

        completion = parse_completion(await response.aread(), response.headers, self.model)
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

    def _finish(self, started_at: float) -> None:
        completion = self._assembler.completion()
        if completion.model:
            completion.choices[0].message.model = completion.model
        else:
            completion.model = self.model
            completion.choices[0].message.model = self.model
        self._completion = completion
        log = resolve(self._client._logger)
        if log is not None:
            usage = completion.usage
            log.debug(
                "model_call",
                model=self.model,
                status=200,
                latency_ms=round((time.perf_counter() - started_at) * 1000, 1),
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                cached_tokens=usage.cached_tokens if usage else None,
                request_id=self.request_id,
                stream=True,
            )


def _has_payload(chunk: ChatCompletionChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.reasoning_content or delta.tool_calls:
            return True
    return False
