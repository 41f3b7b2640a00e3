"""`PostgresLimiter`: the gateway's account concurrency cap, shared by every replica via
PostgreSQL.

Each holder or waiter is a row of `kimi_agent_limiter_slots` (created by the session store's
migrations): `(key, holder, ticket, holding, expires_at)`. A waiter's poll is one short
transaction that first takes a transaction-scoped advisory lock on the key (so grants never
race), deletes expired rows (crashed holders, waiters that stopped polling), queues the caller
with a ticket from a sequence if it is new, and grants a slot when `holding + waiters ahead of
it < limit`: first come, first served across replicas, by the server's clock. A holder renews
its row every third of `ttl`; a crashed holder's row expires after `ttl` seconds, so the cap
never shrinks for good.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from kimi_agent.errors import SessionError
from kimi_agent.scale._common import check_limit, logger, poll_pause, renew_until_cancelled
from kimi_agent.sessions._background import beside
from kimi_agent.sessions._pg_common import PgPool, advisory_key

__all__ = ["PostgresLimiter"]

_EXPIRE = "DELETE FROM kimi_agent_limiter_slots WHERE key = %(key)s AND expires_at < now()"
_POLL = """
INSERT INTO kimi_agent_limiter_slots (key, holder, ticket, expires_at)
VALUES (%(key)s, %(holder)s, nextval('kimi_agent_limiter_tickets'),
        now() + make_interval(secs => %(wait)s))
ON CONFLICT (key, holder) DO UPDATE SET expires_at = CASE
    WHEN kimi_agent_limiter_slots.holding THEN kimi_agent_limiter_slots.expires_at
    ELSE excluded.expires_at END
RETURNING ticket, holding
"""
_AHEAD = """
SELECT count(*) FILTER (WHERE holding),
       count(*) FILTER (WHERE NOT holding AND ticket < %(ticket)s)
FROM kimi_agent_limiter_slots WHERE key = %(key)s AND expires_at >= now()
"""


class PostgresLimiter:
    """At most `limit` slots held at once by every process using the same `key` in the same
    PostgreSQL database.

    `ttl` is how long a slot outlives a holder that stopped renewing (a crashed replica);
    `poll` is the waiters' polling interval. Pass it as `GatewayClient(concurrency=...)`, or
    use `async with limiter.slot(): ...` around anything else that must respect the cap.

    Raises:
        ConfigurationError: `limit` is not a positive int, `ttl` under 1 s, an empty key.
        SessionError: `url` is not a PostgreSQL URL.
    """

    def __init__(self, url: str, key: str, limit: int, *, ttl: float = 30.0,
                 poll: float = 0.05, timeout: float = 10.0, max_connections: int = 4) -> None:
        check_limit(limit, ttl, key)
        self.pool = PgPool(url, min_size=1, max_size=max_connections, timeout=timeout)
        self.key = key
        self.limit = limit
        self.ttl = ttl
        self.poll = poll
        self._lock = advisory_key("kimi_agent.limiter", key)

    def __repr__(self) -> str:
        return f"PostgresLimiter({self.pool.where!r}, {self.key!r}, limit={self.limit})"

    async def in_flight(self) -> int:
        """How many slots are held now (expired ones not counted), by every replica."""
        async with self.pool.connection(f"count slots of limiter {self.key!r}") as connection:
            cursor = await connection.execute(
                "SELECT count(*) FROM kimi_agent_limiter_slots WHERE key = %s AND holding "
                "AND expires_at >= now()", (self.key,))
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[str]:
        """Wait for a slot (first come, first served across replicas) and hold it, renewed,
        until the block ends; gives the holder id.

        Raises:
            SessionStoreUnavailableError: PostgreSQL cannot be reached.
        """
        holder = uuid.uuid4().hex
        try:
            while not await self._try(holder):
                await anyio.sleep(poll_pause(self.poll))
            what = f"slot {holder} of limiter {self.key!r}"
            async with beside(lambda: renew_until_cancelled(
                    lambda: self._renew(holder), self.ttl / 3, what)):
                yield holder
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    async with self.pool.connection(
                            f"free a slot of limiter {self.key!r}") as connection:
                        await connection.execute(
                            "DELETE FROM kimi_agent_limiter_slots WHERE key = %s AND "
                            "holder = %s", (self.key, holder))
                except SessionError as error:
                    logger.warning("could not free slot %s of limiter %r (it expires by "
                                   "itself): %s", holder, self.key, error)

    async def _try(self, holder: str) -> bool:
        wait = max(2.0, self.poll * 40)
        params = {"key": self.key, "holder": holder, "wait": wait}
        what = f"take a slot of limiter {self.key!r}"
        async with self.pool.connection(what) as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", self._lock)
            await connection.execute(_EXPIRE, params)
            cursor = await connection.execute(_POLL, params)
            row = await cursor.fetchone()
            assert row is not None
            ticket, holding = row
            if holding:
                return True
            cursor = await connection.execute(_AHEAD, {"key": self.key, "ticket": ticket})
            counts = await cursor.fetchone()
            assert counts is not None
            if counts[0] + counts[1] >= self.limit:
                return False
            await connection.execute(
                "UPDATE kimi_agent_limiter_slots SET holding = true, expires_at = now() + "
                "make_interval(secs => %s) WHERE key = %s AND holder = %s",
                (self.ttl, self.key, holder))
            return True

    async def _renew(self, holder: str) -> bool:
        async with self.pool.connection(f"renew a slot of limiter {self.key!r}") as connection:
            cursor = await connection.execute(
                "UPDATE kimi_agent_limiter_slots SET expires_at = now() + "
                "make_interval(secs => %s) WHERE key = %s AND holder = %s AND holding",
                (self.ttl, self.key, holder))
            return cursor.rowcount > 0

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        await self.pool.close()

    async def __aenter__(self) -> PostgresLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
