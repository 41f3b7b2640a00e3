"""`GatewayClient`: the one place that talks HTTP to the gateway.

It owns (or borrows) an httpx client, authenticates, retries what the wire facts
(docs/wire/kimi.md, docs/wire/gateway.md) say may be retried, maps every failure to a typed
error, and streams SSE. The API key is held privately: it never appears in a repr, an error
or a log line.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from kimi_agent._logging import EventLogger, resolve
from kimi_agent._tokens import estimate_tools, estimate_wire_messages
from kimi_agent.errors import (
    ConfigurationError,
    GatewayConnectionError,
    GatewayError,
    GatewayTimeoutError,
    MissingAPIKeyError,
    ResponseFormatError,
)
from kimi_agent.gateway import _http
from kimi_agent.gateway._errors import error_from_response, request_ids
from kimi_agent.gateway._retry import RetryPolicy
from kimi_agent.gateway._stream import ChatStream
from kimi_agent.models._profiles import DEFAULT_PROFILES, ModelProfiles
from kimi_agent.wire import ChatCompletion, ChatRequest, dumps

DEFAULT_BASE_URL = "https://llm.bytespike.ai/v1"
DEFAULT_TIMEOUT = _http.Timeout(300.0, connect=10.0)
"""Thinking models may take minutes before a non-streamed reply; connecting may not."""

T = TypeVar("T")


class GatewayClient:
    """An async client of the gateway's OpenAI-compatible chat-completions API.

    `base_url`: the argument, else `BYTESPIKE_BASE_URL`, else the public gateway.
    `api_key`: the argument, else `BYTESPIKE_API_KEY`; a missing key is reported on the first
    request, not here. Use as `async with GatewayClient() as client:`; a client given as
    `http_client` is borrowed and left open.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | _http.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        http_client: _http.AnyAsyncClient | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        profiles: ModelProfiles | None = None,
        logger: EventLogger | None = None,
    ) -> None:
        url = base_url or os.environ.get("BYTESPIKE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self._url = self.base_url + "/chat/completions"
        self._credentials = _Credentials(api_key or os.environ.get("BYTESPIKE_API_KEY") or None)
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self._owns_http = http_client is None
        self._http: _http.AnyAsyncClient = http_client or _http.AsyncClient(
            timeout=timeout,
            limits=_http.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
            ),
        )
        self._logger = logger
        self.profiles = profiles or DEFAULT_PROFILES

    def __repr__(self) -> str:
        key = "set" if self._credentials.key else "missing"
        return f"GatewayClient(base_url={self.base_url!r}, api_key=<{key}>)"

    @property
    def has_api_key(self) -> bool:
        return self._credentials.key is not None

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it."""
        if self._owns_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ requests

    def _auth_headers(self) -> dict[str, str]:
        return self._credentials.headers()

    def encode(self, request: ChatRequest | dict[str, Any]) -> tuple[str, bytes]:
        """(model, body) of a request, a dict being validated as a `ChatRequest` first.

        For a model with a known profile, `max_tokens` is clamped to what the window leaves
        after the prompt, and a prompt that leaves no room raises `ContextLengthError` here,
        before anything is sent.
        """
        if not isinstance(request, ChatRequest):
            request = ChatRequest.model_validate(request)
        body = request.to_wire()
        if request.model in self.profiles:
            profile = self.profiles.get(request.model)
            prompt = estimate_wire_messages(body["messages"]) + estimate_tools(request.tools)
            body["max_tokens"] = profile.clamp_max_tokens(prompt, request.max_tokens)
        return request.model, dumps(body).encode()

    async def complete(self, request: ChatRequest | dict[str, Any]) -> ChatCompletion:
        """Send a non-streamed request; retries as the policy allows."""
        model, body = self.encode(request)
        return await self.complete_body(model, body)

    async def complete_body(self, model: str, body: bytes) -> ChatCompletion:
        """`complete` for a body already encoded (the agent builds bodies itself)."""
        headers = self._auth_headers()
        return await self.with_retries(model, lambda: self._complete_once(model, body, headers))

    async def _complete_once(
        self, model: str, body: bytes, headers: dict[str, str]
    ) -> ChatCompletion:
        started = time.perf_counter()
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except _http.TimeoutException as exc:
            raise GatewayTimeoutError(f"the gateway did not answer in time ({exc!r})",
                                      model=model) from None
        except _http.TransportError as exc:
            raise GatewayConnectionError(f"connection to the gateway failed: {exc!r}",
                                         model=model) from None
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, response.headers, response.content, model=model
            )
        completion = parse_completion(response.content, response.headers, model)
        log = resolve(self._logger)
        if log is not None:
            usage = completion.usage
            log.debug(
                "model_call",
                model=model,
                status=response.status_code,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                cached_tokens=usage.cached_tokens if usage else None,
                request_id=request_ids(response.headers)[0],
                stream=False,
            )
        return completion

    def stream(self, request: ChatRequest | dict[str, Any]) -> ChatStream:
        """A streamed request: `async with client.stream(req) as stream: async for chunk in
        stream: ...`, then `stream.completion`. Retried only before any part of the reply
        reached the caller."""
        if isinstance(request, ChatRequest):
            request = request.model_copy(update={"stream": True})
        else:
            request = {**request, "stream": True}
        model, body = self.encode(request)
        return self.stream_body(model, body)

    def stream_body(self, model: str, body: bytes) -> ChatStream:
        """`stream` for a body already encoded with `"stream": true`."""
        return ChatStream(self, model, body)

    @asynccontextmanager
    async def open_stream(self, model: str, body: bytes) -> AsyncIterator[_http.Response]:
        """One streamed HTTP exchange; error statuses are raised as typed errors."""
        headers = {**self._auth_headers(), "Accept": "text/event-stream"}
        try:
            async with self._http.stream("POST", self._url, content=body,
                                         headers=headers) as response:
                if response.status_code >= 400:
                    content = await response.aread()
                    raise error_from_response(
                        response.status_code, response.headers, content, model=model
                    )
                yield response
        except _http.TimeoutException as exc:
            raise GatewayTimeoutError(f"the gateway stream timed out ({exc!r})",
                                      model=model) from None
        except _http.TransportError as exc:
            raise GatewayConnectionError(
                f"the connection to the gateway dropped: {exc!r}", model=model
            ) from None

    async def with_retries(self, model: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds or the retry policy says stop."""
        policy = self.retry
        started = policy.clock()
        retry_index = 0
        while True:
            try:
                return await attempt()
            except GatewayError as error:
                delay = policy.delay_for(error, retry_index)
                if delay is None or policy.clock() - started + delay > policy.deadline:
                    self._log_failure(model, error, retry_index + 1, final=True)
                    raise
                self._log_failure(model, error, retry_index + 1, final=False, delay=delay)
                await policy.sleep(delay)
                retry_index += 1

    def _log_failure(
        self, model: str, error: GatewayError, attempt: int, *, final: bool,
        delay: float | None = None,
    ) -> None:
        log = resolve(self._logger)
        if log is None:
            return
        (log.warning if final else log.info)(
            "model_call_failed" if final else "model_call_retry",
            model=model,
            attempt=attempt,
            status=error.status,
            error=type(error).__name__,
            error_type=error.error_type,
            message=error.message,
            request_id=error.request_id,
            retry_in_s=None if delay is None else round(delay, 3),
        )


def parse_completion(content: bytes, headers: Any, model: str) -> ChatCompletion:
    """A 2xx body as a `ChatCompletion`, or `ResponseFormatError` saying what was wrong."""
    try:
        completion = ChatCompletion.model_validate_json(content)
    except (ValidationError, ValueError) as exc:
        request_id, trace_id = request_ids(headers)
        preview = content[:200].decode("utf-8", "replace")
        raise ResponseFormatError(
            f"the gateway answered 2xx with a body that is not a chat completion: {preview!r} "
            f"({type(exc).__name__})",
            model=model, request_id=request_id, trace_id=trace_id,
        ) from None
    if not completion.choices:
        raise ResponseFormatError("the gateway answered with no choices", model=model)
    if completion.choices[0].message.model is None:
        completion.choices[0].message.model = completion.model or model
    return completion


class _Credentials:
    """Holds the API key and the headers made from it; its repr never shows them."""

    __slots__ = ("_headers", "key")

    def __init__(self, key: str | None) -> None:
        self.key = key
        self._headers: dict[str, str] | None = None

    def __repr__(self) -> str:
        return "<credentials ***>"

    def headers(self) -> dict[str, str]:
        if self._headers is None:
            if self.key is None:
                raise MissingAPIKeyError(
                    "no API key: pass api_key= to GatewayClient or set BYTESPIKE_API_KEY"
                )
            if not self.key.isascii() or any(c.isspace() for c in self.key):
                raise ConfigurationError(
                    "the API key contains non-ASCII or blank characters: check it was "
                    "copied whole and alone"
                )
            self._headers = {
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
            }
        return self._headers
