"""`RedisBook`: the conversation book in Redis, shared by every replica (see `_book`).

Keys (under the store's prefix, default `kimi_agent:`, whose layout version `RedisClient`
checks): `web:conv:{id}` a hash per conversation; `web:status:{status}` a sorted set per
status of the conversations in it, scored by the time of their last change, so a queue is
one ZRANGE of just what is listed; `web:run:{id}` a run marker (a hash that expires with its
lease, so a killed replica's marker goes away by itself) and `web:runs` the markers by
expiry. Every change is one server-side script (the hash and the status sets move together,
a compare of the version where asked), with the server's clock: atomic across replicas.
"""

from __future__ import annotations

from typing import Any

from kimi_agent import Handoff
from kimi_agent.sessions._redis_common import RedisClient
from kimi_agent.web._book import (
    STATUSES,
    ConversationEntry,
    ConversationStatus,
    RunMarker,
    check_status,
    iso,
)

__all__ = ["RedisBook"]

_NOW = """
local t = redis.call('time')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
# KEYS: conv hash, then the status sets in STATUSES order.
# ARGV: session, customer, status index (1-based), reason, summary, queue, has_handoff,
#       if_version ('' for none), has_queue
_SET = _NOW + """
local current = redis.call('hget', KEYS[1], 'version')
if ARGV[8] ~= '' and current ~= ARGV[8] then return 0 end
local version = (tonumber(current) or 0) + 1
redis.call('hset', KEYS[1], 'customer_id', ARGV[2], 'status', ARGV[3], 'version', version,
           'updated', string.format('%.6f', now))
if ARGV[7] == '1' then
  redis.call('hset', KEYS[1], 'reason', ARGV[4], 'summary', ARGV[5])
  if ARGV[9] == '1' then redis.call('hset', KEYS[1], 'queue', ARGV[6])
  else redis.call('hdel', KEYS[1], 'queue') end
else
  redis.call('hdel', KEYS[1], 'reason', 'summary', 'queue')
end
for i = 2, #KEYS do redis.call('zrem', KEYS[i], ARGV[1]) end
redis.call('zadd', KEYS[1 + tonumber(ARGV[10])], now, ARGV[1])
return version
"""
# KEYS: conv hash, the `active` set. ARGV: session, customer
_CREATE = _NOW + """
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('hset', KEYS[1], 'customer_id', ARGV[2], 'status', 'active', 'version', 1,
             'updated', string.format('%.6f', now))
  redis.call('zadd', KEYS[2], now, ARGV[1])
end
return redis.call('hgetall', KEYS[1])
"""
_NOW_MS = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: marker hash, markers set. ARGV: session, claim, customer, replica, run_id, lease ms
_CLAIM = _NOW_MS + """
if redis.call('exists', KEYS[1]) == 0 then
  local expires = now + tonumber(ARGV[6])
  redis.call('hset', KEYS[1], 'claim', ARGV[2], 'customer_id', ARGV[3], 'replica', ARGV[4],
             'run_id', ARGV[5], 'expires', expires)
  redis.call('pexpireat', KEYS[1], expires)
  redis.call('zadd', KEYS[2], expires, ARGV[1])
end
return redis.call('hgetall', KEYS[1])
"""
# KEYS: marker hash, markers set. ARGV: session, claim, lease ms, run_id ('' keeps it)
_RENEW = _NOW_MS + """
if redis.call('hget', KEYS[1], 'claim') ~= ARGV[2] then return 0 end
local expires = now + tonumber(ARGV[3])
redis.call('hset', KEYS[1], 'expires', expires)
if ARGV[4] ~= '' then redis.call('hset', KEYS[1], 'run_id', ARGV[4]) end
redis.call('pexpireat', KEYS[1], expires)
redis.call('zadd', KEYS[2], expires, ARGV[1])
return 1
"""
_END = """
if redis.call('hget', KEYS[1], 'claim') == ARGV[2] then
  redis.call('del', KEYS[1])
  redis.call('zrem', KEYS[2], ARGV[1])
end
return 1
"""
# KEYS: markers set. ARGV: limit. Drops lapsed ids, returns the live ones.
_LIVE = _NOW_MS + """
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
return redis.call('zrange', KEYS[1], 0, tonumber(ARGV[1]) - 1)
"""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _entry(session_id: str, fields: dict[str, str]) -> ConversationEntry:
    reason = fields.get("reason")
    handoff = (Handoff(reason, fields.get("summary", ""), fields.get("queue"))
               if reason is not None else None)
    return ConversationEntry(session_id, fields["customer_id"],
                             check_status(fields["status"]), handoff,
                             iso(float(fields["updated"])), int(fields["version"]))


def _marker(session_id: str, fields: dict[str, str]) -> RunMarker:
    return RunMarker(session_id, fields["claim"], fields["customer_id"], fields["replica"],
                     fields.get("run_id") or None, int(fields["expires"]) / 1000)


class RedisBook:
    """The conversation book in Redis at `url` (see the module docstring).

    `prefix` must be the session store's prefix when they share a database (the layout
    version lives under it); `timeout` bounds connecting and each command.

    Raises:
        SessionError: `url` is not a Redis URL, or an empty prefix.
    """

    def __init__(self, url: str, *, prefix: str = "kimi_agent:", timeout: float = 10.0
                 ) -> None:
        self.client = RedisClient(url, prefix=prefix, timeout=timeout)

    def __repr__(self) -> str:
        return f"RedisBook({self.client.where!r}, prefix={self.client.prefix!r})"

    async def aclose(self) -> None:
        """Close the client. Idempotent."""
        await self.client.close()

    def _conv(self, session_id: str) -> str:
        return self.client.key("web", "conv", session_id)

    def _statuses(self) -> list[str]:
        return [self.client.key("web", "status", status) for status in STATUSES]

    def _run_keys(self, session_id: str) -> list[str]:
        return [self.client.key("web", "run", session_id), self.client.key("web", "runs")]

    async def get(self, session_id: str) -> ConversationEntry | None:
        """The entry of `session_id` (None for a conversation the web layer never served)."""
        async with self.client.use(f"read conversation {session_id!r}") as redis:
            raw: Any = await redis.hgetall(self._conv(session_id))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return _entry(session_id, fields) if fields else None

    async def create(self, session_id: str, customer_id: str) -> ConversationEntry:
        """The entry of `session_id`, made `active` for `customer_id` if there is none."""
        async with self.client.use(f"create conversation {session_id!r}") as redis:
            flat: Any = await redis.eval(_CREATE, 2, self._conv(session_id),
                                         self._statuses()[0], session_id, customer_id)
        return _entry(session_id, _pairs(flat))

    async def set(self, session_id: str, customer_id: str, status: ConversationStatus,
                  handoff: Handoff | None = None, *, if_version: int | None = None) -> bool:
        """Record where `session_id` stands; with `if_version`, only if the entry is still
        at that version. Returns whether it was written.

        Raises:
            ValueError: an unknown `status`.
        """
        index = STATUSES.index(check_status(status)) + 1
        keys = [self._conv(session_id), *self._statuses()]
        args = [session_id, customer_id, status,
                handoff.reason if handoff else "", handoff.summary if handoff else "",
                (handoff.queue or "") if handoff else "", "1" if handoff else "0",
                "" if if_version is None else str(if_version),
                "1" if handoff is not None and handoff.queue is not None else "0", str(index)]
        async with self.client.use(f"record conversation {session_id!r}") as redis:
            written: Any = await redis.eval(_SET, len(keys), *keys, *args)
        return bool(written)

    async def with_status(self, status: ConversationStatus, *, limit: int = 200
                          ) -> list[ConversationEntry]:
        """The conversations in `status`, oldest change first (a queue's order)."""
        key = self.client.key("web", "status", check_status(status))
        async with self.client.use(f"list {status} conversations") as redis:
            ids = [_text(i) for i in await redis.zrange(key, 0, limit - 1)]
            if not ids:
                return []
            async with redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hgetall(self._conv(session_id))
                rows: list[Any] = await pipe.execute()
        out = []
        for session_id, raw in zip(ids, rows, strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields and fields["status"] == status:   # moved between the two reads
                out.append(_entry(session_id, fields))
        return out

    # ------------------------------------------------------------------ run markers

    async def claim_run(self, marker: RunMarker, lease: float) -> RunMarker:
        """Put `marker` on its conversation unless a live one is there; the one in force."""
        keys = self._run_keys(marker.session_id)
        async with self.client.use(f"claim a run of {marker.session_id!r}") as redis:
            flat: Any = await redis.eval(
                _CLAIM, 2, *keys, marker.session_id, marker.claim, marker.customer_id,
                marker.replica, marker.run_id or "", str(max(1, round(lease * 1000))))
        return _marker(marker.session_id, _pairs(flat))

    async def renew_run(self, session_id: str, claim: str, lease: float, *,
                        run_id: str | None = None) -> bool:
        """Extend the marker of `claim` (and record `run_id`); False if it is not its."""
        async with self.client.use(f"renew the run marker of {session_id!r}") as redis:
            done: Any = await redis.eval(_RENEW, 2, *self._run_keys(session_id), session_id,
                                         claim, str(max(1, round(lease * 1000))),
                                         run_id or "")
        return bool(done)

    async def end_run(self, session_id: str, claim: str) -> None:
        """Remove the marker of `claim`."""
        async with self.client.use(f"end the run marker of {session_id!r}") as redis:
            await redis.eval(_END, 2, *self._run_keys(session_id), session_id, claim)

    async def run_marker(self, session_id: str) -> RunMarker | None:
        """The live marker of `session_id`, if any."""
        async with self.client.use(f"read the run marker of {session_id!r}") as redis:
            raw: Any = await redis.hgetall(self._run_keys(session_id)[0])
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return _marker(session_id, fields) if fields else None

    async def live_runs(self, *, limit: int = 200) -> list[RunMarker]:
        """Every live marker, soonest to lapse first."""
        runs = self.client.key("web", "runs")
        async with self.client.use("list run markers") as redis:
            ids = [_text(i) for i in await redis.eval(_LIVE, 1, runs, str(limit))]
            if not ids:
                return []
            async with redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hgetall(self._run_keys(session_id)[0])
                rows: list[Any] = await pipe.execute()
        out = []
        for session_id, raw in zip(ids, rows, strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields:
                out.append(_marker(session_id, fields))
        return out
