"""When to try a gateway request again, and how long to wait first (docs/wire/gateway.md).

Only errors whose type says a retry can help (`GatewayError.retryable`) are retried, each kind
by its own rule:

- 5xx, busy 429s, streams cut early: exponential backoff from `base_delay` (1 s) with jitter,
  at most `max_retries` retries (3: 4 attempts in all), the gateway's own rule for 5xx since it
  already retried upstream.
- A failed or dropped connection: `max_connection_retries` (1) retry, then the other model.
- A time-out: `max_timeout_retries` (0) retries: a silent gateway already cost the whole wait,
  so the other model is tried at once.
- The account's concurrency cap (429 `concurrency_limit`): a short jittered wait of 1-3 s
  (`concurrency_delay`), up to `max_concurrency_retries` times; it clears as requests finish.
- A key's spend cap (429 with a reset time): wait until `reset_at` when that falls within the
  deadline, else raise at once.
- An empty stream (no choice at all): once.

`Retry-After` is honoured when the gateway sends it (capped by `max_retry_after`, so a server
cannot park us for an hour), `X-RateLimit-Reset` for spend caps; no new attempt starts past
`deadline` seconds from the first. Sleep, randomness and both clocks are injectable, so tests
check the waits without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from kimi_agent.errors import (
    ConcurrencyLimitError,
    EmptyReplyError,
    GatewayConnectionError,
    GatewayError,
    GatewayTimeoutError,
    SpendCapError,
)
from kimi_agent.gateway._headers import parse_retry_after

__all__ = ["RetryPolicy", "parse_retry_after", "retry_family"]

Sleep = Callable[[float], Awaitable[None]]

SPEND_CAP_MARGIN = 1.0
"""Seconds past a spend cap's reset before trying again (the reset is to the second)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed request is retried.

    `max_retries`: retries after the first attempt for 5xx / busy / transport failures
    (0 disables retrying them). `base_delay` · 2^n, capped at `max_delay`, is the ceiling of the
    n-th wait; the wait is drawn between half the ceiling and the ceiling.
    `max_retry_after`: the longest `Retry-After` we accept; a longer one ends the retries.
    `concurrency_delay`: the (low, high) range of the wait after a concurrency-cap 429;
    `max_concurrency_retries` bounds those retries. `max_connection_retries` and
    `max_timeout_retries` bound the retries of failed connections and of time-outs on one
    model (the router then tries the other). `wait_for_spend_cap`: whether a spend cap
    that resets within the deadline is waited for. `max_empty_retries`: retries of a stream
    that gave no choice. `deadline`: seconds from the first attempt after which no new attempt
    starts (and no wait may end).
    """

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    deadline: float = 120.0
    concurrency_delay: tuple[float, float] = (1.0, 3.0)
    max_concurrency_retries: int = 10
    wait_for_spend_cap: bool = True
    max_empty_retries: int = 1
    max_connection_retries: int = 1
    max_timeout_retries: int = 0
    sleep: Sleep = field(default=anyio.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    wall_clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def backoff(self, retry_index: int) -> float:
        """The jittered wait before retry number `retry_index` (0-based): between half the
        exponential ceiling and the ceiling, so the first wait is about `base_delay`."""
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** min(retry_index, 60)))
        return ceiling * (0.5 + 0.5 * float(self.random()))

    def delay_for(self, error: GatewayError, retry_index: int) -> float | None:
        """Seconds to wait before the next attempt, or None when no retry should be made.

        `retry_index` counts the retries already made for this kind of error
        (`retry_family`)."""
        if not error.retryable and not isinstance(error, SpendCapError):
            return None
        if isinstance(error, SpendCapError):
            return self._spend_cap_delay(error, retry_index)
        if isinstance(error, ConcurrencyLimitError):
            if retry_index >= self.max_concurrency_retries:
                return None
            low, high = self.concurrency_delay
            jittered = low + (high - low) * float(self.random())
            return self._honour_retry_after(error, jittered)
        if retry_index >= self._limit(error):
            return None
        return self._honour_retry_after(error, self.backoff(retry_index))

    def _limit(self, error: GatewayError) -> int:
        if isinstance(error, EmptyReplyError):
            return self.max_empty_retries
        if isinstance(error, GatewayTimeoutError):
            return min(self.max_timeout_retries, self.max_retries)
        if isinstance(error, GatewayConnectionError):
            return min(self.max_connection_retries, self.max_retries)
        return self.max_retries

    def _honour_retry_after(self, error: GatewayError, default: float) -> float | None:
        if error.retry_after is None:
            return default
        if error.retry_after > self.max_retry_after:
            return None
        return max(0.0, error.retry_after)

    def _spend_cap_delay(self, error: SpendCapError, retry_index: int) -> float | None:
        if not self.wait_for_spend_cap or retry_index >= 1 or error.reset_at is None:
            return None
        wait = error.reset_at.timestamp() - self.wall_clock() + SPEND_CAP_MARGIN
        if error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return max(0.0, wait) if wait <= self.deadline else None


def retry_family(error: GatewayError) -> str:
    """The kind of failure whose retries are counted together."""
    if isinstance(error, SpendCapError):
        return "spend_cap"
    if isinstance(error, ConcurrencyLimitError):
        return "concurrency"
    if isinstance(error, EmptyReplyError):
        return "empty"
    if isinstance(error, GatewayTimeoutError):
        return "timeout"
    if isinstance(error, GatewayConnectionError):
        return "connection"
    return "transient"


class RetryState:
    """The retries of one request so far: counts per family and the start time."""

    __slots__ = ("attempts", "counts", "policy", "started")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = policy.clock()
        self.counts: dict[str, int] = {}
        self.attempts = 0

    def next_delay(self, error: GatewayError) -> float | None:
        """The wait before trying again after `error`, or None to give up; counts it."""
        family = retry_family(error)
        delay = self.policy.delay_for(error, self.counts.get(family, 0))
        if delay is None:
            return None
        if self.policy.clock() - self.started + delay > self.policy.deadline:
            return None
        self.counts[family] = self.counts.get(family, 0) + 1
        return delay
