"""`GatewayClient`: the one place that talks HTTP to the gateway.

It owns (or borrows) an httpx client, authenticates, queues requests behind its limiters,
retries what the gateway's rules say may be retried, maps every failure to a typed error and
streams SSE (docs/wire/gateway.md). The API key is held privately: it never appears in a repr,
an error, a log line or a frame local of the request functions.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from kimi_agent._logging import EventLogger
from kimi_agent._tokens import estimate_tools, estimate_wire_messages
from kimi_agent.gateway import _http
from kimi_agent.gateway._headers import call_info
from kimi_agent.gateway._limiter import ConcurrencyLimiter, FairLimiter, as_limiter
from kimi_agent.gateway._parse import parse_completion
from kimi_agent.gateway._retry import RetryPolicy
from kimi_agent.gateway._stream import ChatStream
from kimi_agent.gateway._transport import Timeouts, Transport, _Credentials
from kimi_agent.models._profiles import DEFAULT_PROFILES, ModelProfiles
from kimi_agent.wire import ChatCompletion, ChatRequest, dumps

DEFAULT_BASE_URL = "https://llm.bytespike.ai/v1"
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_KEEPALIVE_CONNECTIONS = 20
"""The HTTP library's own default: each idle connection costs every request a check (the
pool scans them all), so only a few are kept open between bursts."""


class GatewayClient:
    """An async client of the gateway's OpenAI-compatible chat-completions API.

    `base_url`: the argument, else `BYTESPIKE_BASE_URL`, else the public gateway.
    `api_key`: the argument, else `BYTESPIKE_API_KEY`; a missing key is reported on the first
    request, not here. Use as `async with GatewayClient() as client:`; a client given as
    `http_client` is borrowed and left open.

    Time-outs per phase, in seconds (None: no limit): `connect_timeout` (10), `headers_timeout`
    (60: a stream's response headers), `idle_timeout` (60: silence between stream events),
    `reply_timeout` (300: a whole non-streamed reply, which a thinking model sends only when
    done). A silent gateway gives a `GatewayTimeoutError` whose `phase` names the wait.

    Concurrency: `concurrency` is the account's cap on requests in flight (Free 5, Pro 25,
    Max 100), an int or a shared `ConcurrencyLimiter`; requests over it queue here, in arrival
    order, instead of meeting the gateway's 429 `concurrency_limit`. Independently, requests
    queue in front of the pool (`pool_limiter`, twice `max_connections`), so the pool never
    holds thousands of waiters; throughput is about connections ÷ latency (100 connections at
    2 s a call: 50 calls/s). `max_keepalive_connections` (20) idle connections stay open.

    Raises:
        ConfigurationError: a time-out that is not a positive number, a bad `concurrency`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float | None = 10.0,
        headers_timeout: float | None = 60.0,
        idle_timeout: float | None = 60.0,
        reply_timeout: float | None = 300.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        concurrency: int | ConcurrencyLimiter | None = None,
        http_client: _http.AnyAsyncClient | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive_connections: int = DEFAULT_KEEPALIVE_CONNECTIONS,
        profiles: ModelProfiles | None = None,
        logger: EventLogger | None = None,
    ) -> None:
        url = base_url or os.environ.get("BYTESPIKE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self.timeouts = Timeouts(connect=connect_timeout, headers=headers_timeout,
                                 idle=idle_timeout, reply=reply_timeout)
        self.pool_limiter = FairLimiter(2 * max_connections)
        """Requests queue here for the pool. It lets in as many requests again as there are
        connections, to wait inside the pool: a connection freed by one is then taken at once
        by the next, instead of sitting idle (and being checked by every request) until a
        waiter here gets its turn."""
        self.limiter = as_limiter(concurrency)
        """The account's concurrency cap, when one was given."""
        self._owns_http = http_client is None
        self._http: _http.AnyAsyncClient = http_client or _http.AsyncClient(
            limits=_http.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_keepalive_connections),
        )
        limiters = (self.pool_limiter,) + ((self.limiter,) if self.limiter else ())
        self._transport = Transport(
            self.base_url + "/chat/completions",
            _Credentials(api_key or os.environ.get("BYTESPIKE_API_KEY") or None),
            self._http, self.timeouts, self.retry, limiters, logger,
        )
        self.profiles = profiles or DEFAULT_PROFILES

    def __repr__(self) -> str:
        key = "set" if self.has_api_key else "missing"
        return f"GatewayClient(base_url={self.base_url!r}, api_key=<{key}>)"

    @property
    def has_api_key(self) -> bool:
        return self._transport.credentials.key is not None

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

    def encode(self, request: ChatRequest | dict[str, Any]) -> tuple[str, bytes]:
        """(model, body) of a request, a dict being validated as a `ChatRequest` first.

        For a model with a known profile, `max_tokens` is clamped to what the window leaves
        after the prompt. Lone surrogates in any text become U+FFFD.

        Raises:
            ContextLengthError: the prompt leaves no room in the model's window (nothing is
                sent).
            pydantic.ValidationError: a dict that is not a valid request.
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
        """Send a non-streamed request; retries as the policy allows. The reply's
        `call_info` holds its ids and the spend / quota headers.

        Raises:
            GatewayError: a subclass saying what failed (see docs/wire/gateway.md):
                `BadRequestError`, `ContextLengthError`, `AuthenticationError`,
                `SpendCapError`, `ConcurrencyLimitError`, `ModelNotAvailableError`,
                `ServerError`, `GatewayTimeoutError`, `ResponseFormatError`, ...
        """
        model, body = self.encode(request)
        return await self.complete_body(model, body)

    async def complete_body(self, model: str, body: bytes) -> ChatCompletion:
        """`complete` for a body already encoded (the agent builds bodies itself).

        A 2xx answer is never sent again (the gateway charges every 2xx), even when its body
        is not a chat completion.

        Raises:
            GatewayError: as `complete`.
        """
        transport = self._transport
        attempts = 0

        async def attempt() -> ChatCompletion:
            nonlocal attempts
            attempts += 1
            response, content, latency = await transport.post(model, body)
            completion = parse_completion(content, response.headers, model, final=True)
            info = call_info(response.headers, model=model, status=response.status_code,
                             stream=False, body_id=completion.id or None, attempts=attempts,
                             latency_s=latency)
            completion._call_info = info
            transport.log_call(info, completion.usage)
            return completion

        return await transport.with_retries(model, attempt)

    def stream(self, request: ChatRequest | dict[str, Any]) -> ChatStream:
        """A streamed request: `async with client.stream(req) as stream: async for chunk in
        stream: ...`, then `stream.completion`. Retried only before any part of the reply
        reached the caller; leaving the `async with` block closes the connection.

        Raises:
            ContextLengthError: as `encode`, at once.
            GatewayError: while iterating, as `complete`; an error frame in the stream raises
                the class its code says, with `partial` holding what had arrived;
                `EmptyReplyError` for a stream without any choice.
        """
        if isinstance(request, ChatRequest):
            request = request.model_copy(update={"stream": True})
        else:
            request = {**request, "stream": True}
        model, body = self.encode(request)
        return self.stream_body(model, body)

    def stream_body(self, model: str, body: bytes) -> ChatStream:
        """`stream` for a body already encoded with `"stream": true`.

        Raises:
            GatewayError: while iterating, as `stream`.
        """
        return ChatStream(self._transport, model, body)
