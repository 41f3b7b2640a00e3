"""Per-customer rate limits: a token bucket per key, forgotten once it is full again."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kimi_agent.errors import ConfigurationError

__all__ = ["RateLimit", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `requests` requests per `per` seconds for one customer, with bursts of up to
    `requests` (a token bucket that refills evenly).

    Raises:
        ConfigurationError: `requests` is below 1 or `per` is not positive.
    """

    requests: int
    per: float = 60.0

    def __post_init__(self) -> None:
        if self.requests < 1 or not self.per > 0:
            raise ConfigurationError(f"a rate limit needs requests >= 1 and per > 0, not "
                                     f"{self.requests} per {self.per}")


class RateLimiter:
    """Buckets by key for one `RateLimit` (None: unlimited)."""

    def __init__(self, limit: RateLimit | None, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, *, now: float | None = None) -> float:
        """Spend one request of `key`: 0.0 when allowed, else the seconds to wait."""
        limit = self.limit
        if limit is None:
            return 0.0
        now = time.monotonic() if now is None else now
        rate = limit.requests / limit.per
        tokens, at = self._buckets.get(key, (float(limit.requests), now))
        tokens = min(float(limit.requests), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._forget_full(now, rate)
        return 0.0

    def _forget_full(self, now: float, rate: float) -> None:
        assert self.limit is not None
        full = float(self.limit.requests)
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= full:
                del self._buckets[key]
