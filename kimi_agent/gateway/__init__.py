"""The gateway: the one place that talks HTTP to ByteSpike's chat-completions API.

`GatewayClient` sends a request (JSON or SSE), queues it behind its limiters
(`ConcurrencyLimiter`, `FairLimiter`), turns error answers into typed errors and retries what
may be retried (`RetryPolicy`); each reply carries a `CallInfo` (ids, spend and quota
headers). Internals: the error mapping, the header readers, the SSE parser, the transport, the
stream and its assembler, and the single import point of the HTTP library. The gateway's
rules are written down in docs/wire/gateway.md.
"""

from __future__ import annotations

from kimi_agent.gateway._client import DEFAULT_BASE_URL, GatewayClient
from kimi_agent.gateway._limiter import ConcurrencyLimiter, FairLimiter
from kimi_agent.gateway._retry import RetryPolicy
from kimi_agent.gateway._stream import ChatStream
from kimi_agent.wire import CallInfo

__all__ = ["DEFAULT_BASE_URL", "CallInfo", "ChatStream", "ConcurrencyLimiter", "FairLimiter",
           "GatewayClient", "RetryPolicy"]
