"""The single import point of the HTTP client library.

The gateway client makes its own clients with httpx2, the maintained continuation of httpx
with the same API: httpx 0.28's connection pool burns several times the CPU at a few hundred
concurrent conversations (measured in `bench/RESULTS.md`). A client the user lends us may be
either an `httpx2.AsyncClient` or an `httpx.AsyncClient`; both work, so the exceptions of both
libraries are caught. Streams are parsed by our own SSE parser (`_sse`) over the raw bytes, the
same for both.
"""

from __future__ import annotations

from typing import TypeAlias

import httpx
import httpx2

AsyncClient = httpx2.AsyncClient
Limits = httpx2.Limits
Timeout = httpx2.Timeout
URL = httpx2.URL

AnyAsyncClient: TypeAlias = httpx2.AsyncClient | httpx.AsyncClient
"""What `GatewayClient(http_client=...)` accepts."""
Response: TypeAlias = httpx2.Response | httpx.Response
Request: TypeAlias = httpx2.Request | httpx.Request

TimeoutException = (httpx2.TimeoutException, httpx.TimeoutException)
ConnectTimeout = (httpx2.ConnectTimeout, httpx.ConnectTimeout)
WriteTimeout = (httpx2.WriteTimeout, httpx.WriteTimeout)
PoolTimeout = (httpx2.PoolTimeout, httpx.PoolTimeout)
TransportError = (httpx2.TransportError, httpx.TransportError)
RequestError = (httpx2.RequestError, httpx.RequestError)
"""Everything the libraries raise for a failed exchange (transport, decoding, protocol)."""

__all__ = [
    "URL",
    "AnyAsyncClient",
    "AsyncClient",
    "ConnectTimeout",
    "Limits",
    "PoolTimeout",
    "Request",
    "RequestError",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
    "WriteTimeout",
]
