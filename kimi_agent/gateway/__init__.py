"""The gateway: the one place that talks HTTP to ByteSpike's chat-completions API.

`GatewayClient` sends a request (JSON or SSE), turns error answers into typed errors and
retries what may be retried (`RetryPolicy`). Internals: the error mapping, the SSE stream and
its assembler, and the single import point of the HTTP library.
"""

from __future__ import annotations

from kimi_agent.gateway._client import DEFAULT_BASE_URL, GatewayClient
from kimi_agent.gateway._retry import RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "GatewayClient", "RetryPolicy"]
