"""`RedisLimiter`: the gateway's account concurrency cap, shared by every replica via Redis.

Three keys under `{prefix}limiter:{key}:`: `holders` (a sorted set of slot holders by expiry),
`queue` (waiters by ticket, a counter `ticket` handing out increasing numbers) and `alive`
(waiters by the time their last poll expires). One script, run atomically on the server with
the server's clock, drops expired holders and waiters that stopped polling, queues the caller
if it is new, and grants a slot when fewer than `limit` are held and the caller is among the
first `free` waiters: first come, first served across all replicas. A holder renews its slot
every third of `ttl`; a holder that crashed stops renewing and its slot comes back after
`ttl` seconds, so the cap never shrinks for good.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from kimi_agent.errors import SessionError
from kimi_agent.scale._common import check_limit, logger, poll_pause, renew_until_cancelled
from kimi_agent.sessions._background import beside
from kimi_agent.sessions._redis_common import RedisClient

__all__ = ["RedisLimiter"]

_ACQUIRE = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local dead = redis.call('zrangebyscore', KEYS[3], '-inf', now)
for _, d in ipairs(dead) do redis.call('zrem', KEYS[2], d) end
redis.call('zremrangebyscore', KEYS[3], '-inf', now)
if redis.call('zscore', KEYS[1], ARGV[1]) then return 1 end
if not redis.call('zscore', KEYS[2], ARGV[1]) then
  redis.call('zadd', KEYS[2], redis.call('incr', KEYS[4]), ARGV[1])
end
redis.call('zadd', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
local free = tonumber(ARGV[2]) - redis.call('zcard', KEYS[1])
if free > 0 and redis.call('zrank', KEYS[2], ARGV[1]) < free then
  redis.call('zrem', KEYS[2], ARGV[1])
  redis.call('zrem', KEYS[3], ARGV[1])
  redis.call('zadd', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  return 1
end
return 0
"""
_RENEW = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('zscore', KEYS[1], ARGV[1]) then
  redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
_RELEASE = """
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
redis.call('zrem', KEYS[3], ARGV[1])
return 1
"""


class RedisLimiter:
    """At most `limit` slots held at once by every process using the same Redis `key`.

    `ttl` is how long a slot outlives a holder that stopped renewing (a crashed replica);
    `poll` is the waiters' polling interval. Pass it as `GatewayClient(concurrency=...)`, or
    use `async with limiter.slot(): ...` around anything else that must respect the cap.

    Raises:
        ConfigurationError: `limit` is not a positive int, `ttl` under 1 s, an empty key.
        SessionError: `url` is not a Redis URL.
    """

    def __init__(self, url: str, key: str, limit: int, *, ttl: float = 30.0,
                 poll: float = 0.05, prefix: str = "kimi_agent:", timeout: float = 10.0) -> None:
        check_limit(limit, ttl, key)
        self.client = RedisClient(url, prefix=prefix, timeout=timeout)
        self.key = key
        self.limit = limit
        self.ttl = ttl
        self.poll = poll
        self._keys = [self.client.key("limiter", key, part)
                      for part in ("holders", "queue", "alive", "ticket")]

    def __repr__(self) -> str:
        return f"RedisLimiter({self.client.where!r}, {self.key!r}, limit={self.limit})"

    async def in_flight(self) -> int:
        """How many slots are held now (expired ones not counted), by every replica."""
        async with self.client.use("count limiter slots") as r:
            return int(await r.zcount(self._keys[0], "(" + str(await _now_ms(r)), "+inf"))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[str]:
        """Wait for a slot (first come, first served across replicas) and hold it, renewed,
        until the block ends; gives the holder id.

        Raises:
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        holder = uuid.uuid4().hex
        ttl_ms = int(self.ttl * 1000)
        waiter_ms = max(2000, int(self.poll * 40_000))
        try:
            while True:
                async with self.client.use(f"take a slot of limiter {self.key!r}") as r:
                    granted = await r.eval(_ACQUIRE, 4, *self._keys, holder, self.limit,
                                           ttl_ms, waiter_ms)
                if granted:
                    break
                await anyio.sleep(poll_pause(self.poll))
            what = f"slot {holder} of limiter {self.key!r}"
            async with beside(lambda: renew_until_cancelled(
                    lambda: self._renew(holder, ttl_ms), self.ttl / 3, what)):
                yield holder
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    async with self.client.use(f"free a slot of limiter {self.key!r}") as r:
                        await r.eval(_RELEASE, 3, *self._keys[:3], holder)
                except SessionError as error:
                    logger.warning("could not free slot %s of limiter %r (it expires by "
                                   "itself): %s", holder, self.key, error)

    async def _renew(self, holder: str, ttl_ms: int) -> bool:
        async with self.client.use(f"renew a slot of limiter {self.key!r}") as r:
            return bool(await r.eval(_RENEW, 1, self._keys[0], holder, ttl_ms))

    async def aclose(self) -> None:
        """Close the Redis client. Idempotent."""
        await self.client.close()

    async def __aenter__(self) -> RedisLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _now_ms(r: object) -> int:
    seconds, micros = await r.time()  # type: ignore[attr-defined]
    return int(seconds) * 1000 + int(micros) // 1000
