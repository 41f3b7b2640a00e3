"""One HTTP exchange with the gateway: limiter slots, auth, per-phase time-outs, typed errors.

`Transport` is the small internal interface that both `GatewayClient` (non-streamed calls)
and `ChatStream` (streamed calls) use; neither reaches into the other. It holds the HTTP
client, the credentials, the limiters, the time-outs, the retry policy and the logger.

Time-outs per phase (docs/wire/gateway.md, "Timeouts"): `connect` (TCP + TLS), `headers` (a
streamed call's wait for its response headers, which the gateway sends before the first
event), `idle` (the longest silence between two reads of a stream), `reply` (a non-streamed
call: the whole reply, since a thinking model writes nothing until it is done). Each is a
`GatewayTimeoutError` naming its phase.

The bearer token never sits in a frame local of these functions (what error trackers
record): requests are signed by a `_Credentials` object, passed as httpx's `auth`, whose repr
hides the key.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from kimi_agent._logging import EventLogger, resolve
from kimi_agent.errors import (
    ConfigurationError,
    GatewayConnectionError,
    GatewayError,
    GatewayTimeoutError,
    MissingAPIKeyError,
)
from kimi_agent.gateway import _http, _sse
from kimi_agent.gateway._errors import error_from_response
from kimi_agent.gateway._limiter import ConcurrencyLimiter
from kimi_agent.gateway._retry import RetryPolicy, RetryState
from kimi_agent.wire import CallInfo, Usage

T = TypeVar("T")

_BACKSTOP = 5.0
"""Seconds added to the library's own read time-out where it is only a backstop, so our
phase time-outs fire first."""
_STATIC_HEADERS = {"Content-Type": "application/json"}
_FAILURES = (TimeoutError, *_http.RequestError)
_STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


RetryObserver = Callable[[str, GatewayError, int, "float | None"], None]
retry_observer: ContextVar[RetryObserver | None] = ContextVar("kimi_agent_retry_observer",
                                                              default=None)
"""Told of each failed attempt (model, error, attempt number, the wait before the next one or
None when it was the last): how tracing shows retries as span events without the client
knowing about tracing. Unset (the default), a failure costs one lookup."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per phase of a call (None: no limit). See the module docstring."""

    connect: float | None = 10.0
    headers: float | None = 60.0
    idle: float | None = 60.0
    reply: float | None = 300.0
    write: float | None = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "headers", "idle", "reply", "write"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ConfigurationError(f"{name}_timeout must be a positive number of "
                                         f"seconds or None, not {value!r}")

    @property
    def library_enforces_idle(self) -> bool:
        """Whether the HTTP library's per-read time-out can be the idle time-out of streams
        (it then also bounds the wait for headers, so only when headers ≤ idle): no cancel
        scope per chunk, which would cost more CPU than parsing the chunk."""
        return self.idle is not None and self.headers is not None and self.headers <= self.idle

    @property
    def chunk_idle(self) -> float | None:
        """The idle time-out we enforce ourselves around each read (None: the library does,
        or there is none)."""
        return None if self.library_enforces_idle else self.idle

    def library(self, *, stream: bool) -> tuple[float | None, float | None, float | None,
                                                 float | None]:
        """(connect, read, write, pool) for the HTTP library."""
        if not stream:
            read = None if self.reply is None else self.reply + _BACKSTOP
        elif self.library_enforces_idle:
            read = self.idle
        else:
            read = None if self.headers is None or self.idle is None else max(
                self.headers, self.idle) + _BACKSTOP
        return self.connect, read, self.write, None


@dataclass(slots=True)
class Exchange:
    """An open streamed response: its status, headers and body bytes."""

    response: _http.Response
    chunks: AsyncIterator[bytes]
    started: float


class Transport:
    """Sends requests for `GatewayClient` and `ChatStream` (internal)."""

    def __init__(
        self, url: str, credentials: _Credentials, http: _http.AnyAsyncClient,
        timeouts: Timeouts, retry: RetryPolicy, limiters: tuple[ConcurrencyLimiter, ...],
        logger: EventLogger | None,
    ) -> None:
        self.url = url
        # parsed once: building a request from the string parses it on every call
        self._request_url: object = _http.URL(url) if isinstance(http, _http.AsyncClient) \
            else url
        self.credentials = credentials
        self.http = http
        self.timeouts = timeouts
        self.retry = retry
        self.limiters = limiters
        self.logger = logger

    # ------------------------------------------------------------------ one exchange

    async def post(self, model: str, body: bytes) -> tuple[_http.Response, bytes, float]:
        """One non-streamed attempt: (response, body, latency in seconds); error statuses are
        raised as typed errors.

        Raises:
            GatewayError: the typed error of the answer or of the failed exchange.
        """
        self.credentials.check()
        async with self._slots():
            started = time.perf_counter()
            phase = "headers"
            try:
                with anyio.fail_after(self.timeouts.reply):
                    response = await self._send(body, stream=False)
                    phase = "reply"
                    try:
                        content = await response.aread()
                    finally:
                        await _close(response)
            except _FAILURES as exc:
                raise self._transport_error(exc, model, phase,
                                            limit=self.timeouts.reply) from None
            if response.status_code >= 400:
                raise error_from_response(response.status_code, response.headers, content,
                                          model=model)
            return response, content, time.perf_counter() - started

    @asynccontextmanager
    async def open_stream(self, model: str, body: bytes) -> AsyncIterator[Exchange]:
        """One streamed attempt, open while the block runs: slots held, headers received,
        error statuses raised as typed errors. On leaving, a fully read body has been drained
        so its connection is reused; otherwise the connection is closed."""
        self.credentials.check()
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._slots())
            started = time.perf_counter()
            try:
                with anyio.fail_after(self.timeouts.headers):
                    response = await self._send(body, stream=True)
            except _FAILURES as exc:
                raise self._transport_error(exc, model, "headers",
                                            limit=self.timeouts.headers) from None
            stack.push_async_callback(_close, response)
            if response.status_code >= 400:
                try:
                    with anyio.fail_after(self.timeouts.idle):
                        content = await response.aread()
                except _FAILURES as exc:
                    raise self._transport_error(exc, model, "idle",
                                                limit=self.timeouts.idle) from None
                raise error_from_response(response.status_code, response.headers, content,
                                          model=model)
            yield Exchange(response, response.aiter_bytes(), started)

    async def events(self, exchange: Exchange, model: str,
                     request_id: str | None) -> AsyncGenerator[str, None]:
        """The SSE `data` of a streamed body, each wait bounded by the idle time-out; after
        `[DONE]` the rest of the body is drained (bounded) so the connection is reused."""
        try:
            async for data in _sse.events(exchange.chunks, self.timeouts.chunk_idle):
                if data == _sse.DONE:
                    # Drain first: the consumer stops at [DONE] and closes us.
                    await _sse.drain(exchange.chunks)
                yield data
        except _sse.IdleTimeout:
            raise GatewayTimeoutError(
                f"the stream went silent for more than {self.timeouts.idle} s between events",
                phase="idle", model=model, request_id=request_id) from None
        except _FAILURES as exc:
            raise self._transport_error(exc, model, "idle", request_id,
                                        limit=self.timeouts.idle) from None

    async def read_body(self, exchange: Exchange, model: str) -> bytes:
        """The whole body of an open response, each wait bounded by the idle time-out (a
        server that ignored `stream: true` and answers with one JSON body).

        Raises:
            GatewayTimeoutError: the body went silent (`phase="idle"`).
            GatewayConnectionError: the connection failed while reading.
        """
        parts: list[bytes] = []
        try:
            while (part := await _sse.next_bytes(exchange.chunks,
                                                 self.timeouts.chunk_idle)) is not None:
                parts.append(part)
        except _sse.IdleTimeout:
            raise GatewayTimeoutError(
                _timeout_message("idle", self.timeouts.idle), phase="idle", model=model,
            ) from None
        except _FAILURES as exc:
            raise self._transport_error(exc, model, "idle", limit=self.timeouts.idle) from None
        return b"".join(parts)

    # ------------------------------------------------------------------ retries

    async def with_retries(self, model: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds or the retry policy says stop."""
        state = RetryState(self.retry)
        while True:
            state.attempts += 1
            try:
                return await attempt()
            except GatewayError as error:
                delay = state.next_delay(error)
                self.log_failure(model, error, state.attempts, final=delay is None,
                                 delay=delay)
                if delay is None:
                    raise
                await self.retry.sleep(delay)

    # ------------------------------------------------------------------ logging

    def log_call(self, info: CallInfo, usage: Usage | None) -> None:
        """The `model_call` line at INFO: model, latency, tokens, ids, spend and quota."""
        log = resolve(self.logger)
        if log is None:
            return
        log.info(
            "model_call",
            model=info.model,
            status=info.status,
            stream=info.stream,
            attempts=info.attempts,
            latency_ms=None if info.latency_s is None else round(info.latency_s * 1000, 1),
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            cached_tokens=usage.cached_tokens if usage else None,
            request_id=info.request_id,
            trace_id=info.trace_id,
            rate_limit_remaining=info.rate_limit_remaining,
            quota_remaining_credits=info.quota_remaining_credits,
        )

    def log_failure(self, model: str, error: GatewayError, attempt: int, *, final: bool,
                    delay: float | None = None) -> None:
        """`model_call_retry` (INFO) or `model_call_failed` (WARNING), with the ids; and the
        run's retry observer, when one is set (tracing)."""
        observer = retry_observer.get()
        if observer is not None:
            observer(model, error, attempt, None if final else delay)
        log = resolve(self.logger)
        if log is None:
            return
        (log.warning if final else log.info)(
            "model_call_failed" if final else "model_call_retry",
            model=model,
            attempt=attempt,
            status=error.status,
            error=type(error).__name__,
            code=error.code,
            error_type=error.error_type,
            message=error.message,
            request_id=error.request_id,
            trace_id=error.trace_id,
            retry_in_s=None if delay is None else round(delay, 3),
        )

    # ------------------------------------------------------------------ internals

    @asynccontextmanager
    async def _slots(self) -> AsyncIterator[None]:
        if len(self.limiters) == 1:          # the pool limiter alone: the common case
            async with self.limiters[0].slot():
                yield
            return
        async with AsyncExitStack() as stack:
            for limiter in self.limiters:
                await stack.enter_async_context(limiter.slot())
            yield

    async def _send(self, body: bytes, *, stream: bool) -> _http.Response:
        """Send and return once the response headers are in (the body is read later)."""
        http: Any = self.http  # either library: same API, distinct types
        request = http.build_request(
            "POST", self._request_url, content=body,
            headers=_STREAM_HEADERS if stream else _STATIC_HEADERS,
            timeout=self.timeouts.library(stream=stream),
        )
        response: _http.Response = await http.send(request, stream=True,
                                                   auth=self.credentials)
        return response

    def _transport_error(self, exc: BaseException, model: str, phase: str,
                         request_id: str | None = None, *,
                         limit: float | None = None) -> GatewayError:
        """The typed error for a time-out of ours or a failure of the HTTP library."""
        if isinstance(exc, (*_http.TimeoutException, TimeoutError)):
            if isinstance(exc, _http.ConnectTimeout):
                phase, limit = "connect", self.timeouts.connect
            elif isinstance(exc, _http.WriteTimeout):
                phase, limit = "write", self.timeouts.write
            elif isinstance(exc, _http.PoolTimeout):
                phase, limit = "pool", None
            return GatewayTimeoutError(_timeout_message(phase, limit), phase=phase,
                                       model=model, request_id=request_id)
        return GatewayConnectionError(f"the connection to the gateway failed: {exc!r}",
                                      model=model, request_id=request_id)


def _timeout_message(phase: str, seconds: float | None) -> str:
    what = {
        "connect": "connecting to the gateway",
        "headers": "waiting for the gateway's response headers",
        "reply": "waiting for the gateway's reply",
        "idle": "waiting for the next stream event",
        "write": "sending the request",
        "pool": "waiting for a free connection",
    }.get(phase, phase)
    after = f" after {seconds:g} s" if seconds is not None else ""
    return f"timed out {what}{after} (phase {phase!r})"


async def _close(response: _http.Response) -> None:
    """Close a response even inside a cancelled scope: its connection must not leak."""
    with anyio.CancelScope(shield=True):
        await response.aclose()


class _Credentials:
    """Signs requests with the API key (an httpx `auth` callable); its repr never shows it.

    Raises (from `check`):
        MissingAPIKeyError: no key was given and `BYTESPIKE_API_KEY` is not set.
        ConfigurationError: the key has non-ASCII or blank characters.
    """

    __slots__ = ("_bearer", "key")

    def __init__(self, key: str | None) -> None:
        self.key = key
        self._bearer: str | None = None

    def __repr__(self) -> str:
        return "<credentials ***>"

    def check(self) -> None:
        if self._bearer is not None:
            return
        if self.key is None:
            raise MissingAPIKeyError(
                "no API key: pass api_key= to GatewayClient or set BYTESPIKE_API_KEY")
        if not self.key.isascii() or any(c.isspace() for c in self.key):
            raise ConfigurationError(
                "the API key contains non-ASCII or blank characters: check it was copied "
                "whole and alone")
        self._bearer = "Bearer " + self.key

    def __call__(self, request: Any) -> Any:
        self.check()
        request.headers["Authorization"] = self._bearer
        return request
