"""Scaling out: the gateway's account concurrency cap shared by every replica.

`RedisLimiter(url, key, limit)` and `PostgresLimiter(url, key, limit)` implement the gateway
client's limiter shape (`async with limiter.slot(): ...`): N processes using the same key
together never hold more than `limit` slots, waiters are served first come, first served, and
a crashed holder's slot comes back after `ttl`. The conversation stores and their locks are in
`kimi_agent.sessions` (`PostgresSession`, `RedisSession`). Each limiter needs its extra
(`kimi-agent[redis]`, `kimi-agent[postgres]`); they are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kimi_agent.scale._pg_limiter import PostgresLimiter
    from kimi_agent.scale._redis_limiter import RedisLimiter

__all__ = ["PostgresLimiter", "RedisLimiter"]

_EXPORTS = {"PostgresLimiter": "kimi_agent.scale._pg_limiter",
            "RedisLimiter": "kimi_agent.scale._redis_limiter"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent.scale' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
