"""Limiters in front of the connection pool: requests queue here, fairly, instead of at the
pool or at the gateway's concurrency cap (docs/wire/gateway.md, "Concurrency").

A `ConcurrencyLimiter` is anything with `slot()`, an async context manager that holds one
in-flight request while it is open. `GatewayClient` holds a slot of each limiter it has for the
whole HTTP exchange of one attempt (a stream: until its body is read or closed) and never while
it waits between retries. `FairLimiter` is the in-process one: first come, first served.
Shared limiters (Redis, PostgreSQL) implement the same one method, so that several processes
together keep an account's cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable

import anyio

from kimi_agent.errors import ConfigurationError


@runtime_checkable
class ConcurrencyLimiter(Protocol):
    """At most N requests in flight; the others wait their turn.

    `slot()` returns an async context manager: entering waits for a free slot (waiters are
    served in arrival order), leaving frees it, also when the request failed or was
    cancelled. An implementation must tolerate many waiters, and a slot whose holder crashed
    must come back (in-process: when the task ends; shared: by expiry).
    """

    def slot(self) -> AbstractAsyncContextManager[object]:
        """Hold one slot while the returned context is open."""
        ...


class FairLimiter:
    """An in-process `ConcurrencyLimiter` of `limit` slots, granted in arrival order.

    `in_flight` and `waiting` show the current load (for logs and tests).

    Raises:
        ConfigurationError: `limit` is not a positive integer.
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(
                f"a concurrency limit must be a positive integer, not {limit!r}")
        self.limit = limit
        self._capacity = anyio.CapacityLimiter(limit)
        self._waiting = 0

    def __repr__(self) -> str:
        return f"FairLimiter(limit={self.limit}, in_flight={self.in_flight})"

    @property
    def in_flight(self) -> int:
        return int(self._capacity.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[object]:
        """Wait for a slot (FIFO) and hold it until the block ends."""
        token = object()  # one borrower per slot, so a task may hold several
        self._waiting += 1
        try:
            await self._capacity.acquire_on_behalf_of(token)
        finally:
            self._waiting -= 1
        try:
            yield token
        finally:
            self._capacity.release_on_behalf_of(token)


def as_limiter(value: int | ConcurrencyLimiter | None) -> ConcurrencyLimiter | None:
    """A limiter from `GatewayClient(concurrency=...)`: an int makes a `FairLimiter`.

    Raises:
        ConfigurationError: the value is neither a positive int nor has `slot()`.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return FairLimiter(value)
    if isinstance(value, ConcurrencyLimiter):
        return value
    raise ConfigurationError(
        f"concurrency= takes a positive int or an object with an async slot() context "
        f"manager (a ConcurrencyLimiter), not {type(value).__name__}")
