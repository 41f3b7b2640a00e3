"""`RedisSession` / `RedisStore`: conversations on a Redis server, shared by replicas.

```python
store = RedisStore("redis://cache.internal:6379/0")       # one client per process
session = store.session("customer-42")
result = await agent.run("我的订单 A1024 到哪了？", session=session)
await store.list_sessions(), await store.delete_session("customer-7")
await store.aclose()                                        # or `async with store:`
```

Layout (prefix `kimi_agent:` by default, see `_redis_common`): `{prefix}msg:{id}` a list of
messages as JSON text (`ensure_ascii=False`, so Chinese text, `reasoning_content`, tool-call
ids and `model` come back exactly), `{prefix}state:{id}` a hash of state values,
`{prefix}sessions` a sorted set of ids by last update, `{prefix}lock:{id}` / `{prefix}fence:{id}`
the conversation lock and its fencing counter.

Guarantees:
- Every `add_items` call is one server-side script (RPUSH of all the messages plus the index
  update): all of them are stored, or none. Positions are list indexes, so `get_since` and
  `get_items(limit)` are one LRANGE of just those messages.
- `lock(timeout=...)`: `SET NX PX` with a value naming the holder and a fencing token (a
  per-conversation counter, increasing with every grant), renewed every third of `lock_ttl`
  while held and deleted only by its holder. A replica that dies stops renewing, so the lock
  expires after `lock_ttl` seconds. While a session holds the lock, its writes check it inside
  the same script: a holder whose lock expired and was taken over cannot write any more
  (`ConversationBusyError`), so a stalled replica never interleaves with the next one.
- Durability is the server's: use `appendonly yes` with `appendfsync always` (or `everysec`)
  for conversations that must survive a Redis restart.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import redis.exceptions

from kimi_agent.errors import ConversationBusyError, SessionError
from kimi_agent.sessions._background import beside
from kimi_agent.sessions._redis_common import RedisClient
from kimi_agent.sessions._sqlite import _dump_all, _load
from kimi_agent.wire import Message, dumps

__all__ = ["RedisSession", "RedisStore"]

logger = logging.getLogger("kimi_agent.sessions")

_LOST = "KIMI_LOCK_LOST"
_APPEND = """
if ARGV[1] ~= '' and redis.call('get', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('""" + _LOST + """')
end
local t = redis.call('time')
for i = 3, #ARGV do redis.call('rpush', KEYS[1], ARGV[i]) end
redis.call('zadd', KEYS[2], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[2])
return redis.call('llen', KEYS[1])
"""
_SET_STATE = """
if ARGV[1] ~= '' and redis.call('get', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('""" + _LOST + """')
end
if ARGV[3] == '' then redis.call('hdel', KEYS[1], ARGV[2])
else redis.call('hset', KEYS[1], ARGV[2], ARGV[3]) end
return 1
"""
_TAKE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisStore:
    """Many conversations in one Redis database, behind one client (its own pool).

    `timeout` bounds connecting and each command (a server that is down raises
    `SessionStoreUnavailableError`); `prefix` namespaces every key; `lock_ttl` is how long a
    conversation lock outlives a holder that stopped renewing it (a crashed replica).

    Raises:
        SessionError: `url` is not a Redis URL, an empty prefix, or `lock_ttl` under 0.5 s.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, prefix: str = "kimi_agent:",
                 lock_ttl: float = 30.0) -> None:
        if not lock_ttl >= 0.5:
            raise SessionError(f"lock_ttl must be at least 0.5 s, not {lock_ttl!r}")
        self.client = RedisClient(url, prefix=prefix, timeout=timeout)
        self.url = url
        self.lock_ttl = lock_ttl

    def __repr__(self) -> str:
        return f"RedisStore({self.client.where!r}, prefix={self.client.prefix!r})"

    def session(self, session_id: str) -> RedisSession:
        """A session of this store (closing it leaves the store open)."""
        return RedisSession(session_id, store=self)

    @property
    def closed(self) -> bool:
        return self.client.closed

    async def aclose(self) -> None:
        """Close the client. Idempotent."""
        await self.client.close()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def list_sessions(self) -> list[str]:
        """The ids of the stored sessions, most recently updated first.

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        async with self.client.use("list sessions") as r:
            ids = await r.zrevrange(self.client.key("sessions"), 0, -1)
        return [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in ids]

    async def delete_session(self, session_id: str) -> None:
        """Delete a session, its messages and its state (a no-op for an unknown id).

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        key = self.client.key
        async with self.client.use(f"delete session {session_id!r}") as r, \
                r.pipeline(transaction=True) as pipe:
            pipe.delete(key("msg", session_id), key("state", session_id))
            pipe.zrem(key("sessions"), session_id)
            await pipe.execute()


class RedisSession:
    """A conversation stored in Redis (see the module docstring for the guarantees).

    `RedisSession("customer-42", "redis://…")` opens its own client (closed by `aclose()`);
    `store.session("customer-42")` shares the client of a `RedisStore`.

    Raises:
        SessionError: an empty session id, a bad URL, or both a URL and a store.
    """

    def __init__(self, session_id: str, url: str | None = None, *,
                 store: RedisStore | None = None, timeout: float = 10.0,
                 prefix: str = "kimi_agent:", lock_ttl: float = 30.0) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise SessionError(f"a session id must be a non-empty str, not {session_id!r}")
        if (store is None) == (url is None):
            raise SessionError("give either a Redis URL or a store (exactly one)")
        self.session_id = session_id
        self._owns_store = store is None
        self.store = store if store is not None else RedisStore(
            url or "", timeout=timeout, prefix=prefix, lock_ttl=lock_ttl)
        self._held = b""
        """The value of the lock this session holds (b"" when it holds none)."""
        self._token = 0

    def __repr__(self) -> str:
        return f"RedisSession({self.session_id!r}, {self.store.client.where!r})"

    @property
    def conversation_key(self) -> tuple[str, str, str]:
        """The server, the prefix and the session id (runs on one key are serialised)."""
        return (self.store.client.where, self.store.client.prefix, self.session_id)

    def _key(self, kind: str) -> str:
        return self.store.client.key(kind, self.session_id)

    def _use(self, what: str) -> Any:
        return self.store.client.use(f"{what} session {self.session_id!r}")

    def _lost(self, error: redis.exceptions.ResponseError, what: str) -> Exception:
        if _LOST in str(error):
            return ConversationBusyError(
                f"cannot {what} session {self.session_id!r}: its conversation lock expired "
                "and another run holds it now (this process stalled longer than lock_ttl); "
                "nothing was written")
        return error

    # ------------------------------------------------------------------ the protocol

    async def get_items(self, limit: int | None = None) -> list[Message]:
        """The history, oldest first; with `limit`, only the newest `limit` messages.

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        if limit is not None and limit <= 0:
            return []
        async with self._use("read") as r:
            if limit is None:
                start, texts = 0, await r.lrange(self._key("msg"), 0, -1)
            else:
                async with r.pipeline(transaction=True) as pipe:
                    pipe.llen(self._key("msg"))
                    pipe.lrange(self._key("msg"), -limit, -1)
                    length, texts = await pipe.execute()
                start = length - len(texts)
        return [_load(self.session_id, start + i, t.decode("utf-8")) for i, t in enumerate(texts)]

    async def get_since(self, position: int) -> list[Message]:
        """The messages at `position` (0-based) and after, oldest first: one LRANGE.

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        start = max(0, position)
        async with self._use("read") as r:
            texts = await r.lrange(self._key("msg"), start, -1)
        return [_load(self.session_id, start + i, t.decode("utf-8")) for i, t in enumerate(texts)]

    async def add_items(self, items: Sequence[Message]) -> None:
        """Append messages in one server-side script: all of them are stored, or none.

        Raises:
            SessionError: an item is not a message (nothing is written).
            ConversationBusyError: this session's lock expired and another run took it.
            SessionStoreUnavailableError: the server cannot be reached.
        """
        rows = _dump_all(self.session_id, items)
        if not rows:
            return
        async with self._use("append to") as r:
            try:
                await r.eval(_APPEND, 3, self._key("msg"), self.store.client.key("sessions"),
                             self._key("lock"), self._held, self.session_id,
                             *(text.encode("utf-8") for _, text, _ in rows))
            except redis.exceptions.ResponseError as error:
                raise self._lost(error, "append to") from error

    async def pop_item(self) -> Message | None:
        """Remove and return the newest message (None when the session is empty).

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        async with self._use("pop from") as r, r.pipeline(transaction=True) as pipe:
            pipe.rpop(self._key("msg"))
            pipe.llen(self._key("msg"))
            text, length = await pipe.execute()
        return None if text is None else _load(self.session_id, length, text.decode("utf-8"))

    async def clear_session(self) -> None:
        """Forget the whole conversation (messages, state and its index entry)."""
        await self.store.delete_session(self.session_id)

    async def get_state(self, key: str) -> Any:
        """The value stored under `key` for this session, or None."""
        async with self._use(f"read state {key!r} of") as r:
            text = await r.hget(self._key("state"), key)
        return None if text is None else json.loads(text)

    async def get_all_state(self) -> dict[str, Any]:
        """Every state value of this session, by key (for copying a conversation)."""
        async with self._use("read the state of") as r:
            found = await r.hgetall(self._key("state"))
        return {k.decode("utf-8"): json.loads(v) for k, v in sorted(found.items())}

    async def set_state(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`; None deletes it. One script.

        Raises:
            ConversationBusyError: this session's lock expired and another run took it.
        """
        text = b"" if value is None else dumps(value).encode("utf-8")
        async with self._use(f"write state {key!r} of") as r:
            try:
                await r.eval(_SET_STATE, 2, self._key("state"), self._key("lock"),
                             self._held, key, text)
            except redis.exceptions.ResponseError as error:
                raise self._lost(error, f"write state {key!r} of") from error

    # ------------------------------------------------------------------ the lock

    @asynccontextmanager
    async def lock(self, timeout: float | None = 30.0) -> AsyncIterator[int]:
        """Hold this conversation against every other replica for the block; gives the
        fencing token (it increases with every grant of this conversation's lock).
        Re-entrant on this session object (a host holding it around `agent.run` is fine).

        Raises:
            ConversationBusyError: another holder kept it for `timeout` seconds.
            SessionStoreUnavailableError: the server cannot be reached.
        """
        if self._held:  # re-entered by the same holder (a host, then the agent)
            yield self._token
            return
        ttl_ms = int(self.store.lock_ttl * 1000)
        owner = uuid.uuid4().hex
        token = await self._take(owner, ttl_ms, timeout)
        value = f"{owner}:{token}".encode()
        self._held, self._token = value, token
        try:
            async with beside(lambda: self._renew(value, ttl_ms)):
                yield token
        finally:
            self._held = b""
            with anyio.CancelScope(shield=True):
                try:
                    async with self._use("unlock") as r:
                        await r.eval(_RELEASE, 1, self._key("lock"), value)
                except SessionError as error:
                    logger.warning("could not release the lock of session %r (it expires "
                                   "by itself): %s", self.session_id, error)

    async def _take(self, owner: str, ttl_ms: int, timeout: float | None) -> int:
        pause = 0.02
        with anyio.move_on_after(timeout) as waited:
            while True:
                async with self._use("lock") as r:
                    token = int(await r.eval(_TAKE, 2, self._key("lock"), self._key("fence"),
                                             owner, ttl_ms))
                if token:
                    return token
                await anyio.sleep(pause)
                pause = min(pause * 1.5, 0.25)
        assert waited.cancelled_caught
        raise ConversationBusyError(
            f"session {self.session_id!r} is busy: another replica's run held it for "
            f"{timeout:g} s")

    async def _renew(self, value: bytes, ttl_ms: int) -> None:
        while True:
            await anyio.sleep(ttl_ms / 3000)
            try:
                async with self._use("renew the lock of") as r:
                    renewed = await r.eval(_RENEW, 1, self._key("lock"), value, ttl_ms)
            except SessionError as error:
                logger.warning("could not renew the lock of session %r: %s",
                               self.session_id, error)
                continue
            if not renewed:
                logger.warning("the lock of session %r expired while held; its writes are "
                               "refused from now on", self.session_id)
                return

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the client this session opened (a shared store stays open)."""
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> RedisSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
