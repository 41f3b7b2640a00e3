"""When to try a gateway request again, and how long to wait first.

Only errors whose type says a retry can help (`GatewayError.retryable`) are retried:
exponential backoff with full jitter, `Retry-After` honoured when the gateway sends it
(capped, so a server cannot park us for an hour), a bounded number of attempts and a total
deadline for all of them. The sleep and the random source are injectable, so tests check the
waits without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import anyio

from kimi_agent.errors import GatewayError

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed request is retried.

    `max_retries`: retries after the first attempt (0 disables retrying).
    `base_delay` · 2^n, capped at `max_delay`, is the upper bound of the n-th jittered wait.
    `max_retry_after`: the longest `Retry-After` we accept; a longer one ends the retries.
    `deadline`: seconds from the first attempt after which no new attempt starts.
    """

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    deadline: float = 120.0
    sleep: Sleep = field(default=anyio.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def backoff(self, retry_index: int) -> float:
        """The jittered wait before retry number `retry_index` (0-based): full jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2.0**retry_index))
        return float(self.random()) * ceiling

    def delay_for(self, error: GatewayError, retry_index: int) -> float | None:
        """Seconds to wait before the next attempt, or None when no retry should be made."""
        if not error.retryable or retry_index >= self.max_retries:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return max(0.0, error.retry_after)
        return self.backoff(retry_index)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds from delta-seconds or an HTTP date; None when absent or bad."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
