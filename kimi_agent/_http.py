"""The single import point of the HTTP client library, so it can be swapped in one place."""

from __future__ import annotations

from httpx import (
    AsyncClient,
    Limits,
    Response,
    Timeout,
    TimeoutException,
    TransportError,
)
from httpx_sse import EventSource

__all__ = [
    "AsyncClient",
    "EventSource",
    "Limits",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
]
