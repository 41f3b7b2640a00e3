"""The single import point of the HTTP client library.

The gateway client makes its own clients with httpx2, the maintained continuation of httpx
with the same API: httpx 0.28's connection pool burns several times the CPU at a few hundred
concurrent conversations (measured in `bench/RESULTS.md`). A client the user lends us may be
either an `httpx2.AsyncClient` or an `httpx.AsyncClient`; both work, so the exceptions of both
libraries are caught and each library's own SSE parser reads its streams.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, TypeAlias

import httpx
import httpx2
import httpx_sse

AsyncClient = httpx2.AsyncClient
Limits = httpx2.Limits
Timeout = httpx2.Timeout

AnyAsyncClient: TypeAlias = httpx2.AsyncClient | httpx.AsyncClient
"""What `GatewayClient(http_client=...)` accepts."""
Response: TypeAlias = httpx2.Response | httpx.Response

TimeoutException = (httpx2.TimeoutException, httpx.TimeoutException)
TransportError = (httpx2.TransportError, httpx.TransportError)


async def sse_data(response: Response) -> AsyncGenerator[str, None]:
    """The `data` field of each server-sent event of a streamed response, in order.

    The parser's own generator is closed as soon as we stop, not left to the garbage
    collector with the response it holds."""
    if isinstance(response, httpx2.Response):
        events: AsyncGenerator[Any, None] = httpx2.EventSource(response).__aiter__()  # type: ignore[assignment]
    else:
        events = httpx_sse.EventSource(response).aiter_sse()
    async with aclosing(events):
        async for event in events:
            yield event.data


__all__ = [
    "AnyAsyncClient",
    "AsyncClient",
    "Limits",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
    "sse_data",
]
