"""What the Redis session store, lock and limiter share: the client, the key layout and its
version, and turning driver errors into typed session errors.

Every key starts with `prefix` (default `kimi_agent:`); `{prefix}schema` holds the layout's
version, written with SET NX on first use. A different value there (or a key of another type)
means the prefix is in use by something else, or by a newer kimi-agent: `SessionSchemaError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import redis.asyncio as aioredis
import redis.exceptions

from kimi_agent.errors import SessionError, SessionSchemaError, SessionStoreUnavailableError

__all__ = ["LAYOUT_VERSION", "RedisClient"]

LAYOUT_VERSION = 1
"""1: a list of messages, a hash of state per session; a sorted set of sessions."""
_MARK = b"kimi-agent sessions v"


def redact(url: str) -> str:
    """`url` without its password, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"


class RedisClient:
    """A lazily created `redis.asyncio.Redis` (its own connection pool) with the layout version
    checked on first use.

    `timeout` bounds connecting and each command: a server that is down raises
    `SessionStoreUnavailableError` after it; the same client reconnects once it is back.
    """

    def __init__(self, url: str, *, prefix: str, timeout: float) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise SessionError(f"a Redis URL starts with redis://, not {str(url)[:40]!r}")
        if not prefix:
            raise SessionError("a Redis key prefix must not be empty")
        self.url = url
        self.where = redact(url)
        self.prefix = prefix
        self.timeout = timeout
        self._client: aioredis.Redis | None = None
        self._ready = False
        self._opening = anyio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @asynccontextmanager
    async def use(self, what: str) -> AsyncIterator[aioredis.Redis]:
        """The client for `what`; driver errors become typed session errors."""
        try:
            yield await self._open(what)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise SessionStoreUnavailableError(
                f"cannot {what}: Redis at {self.where} is unreachable: "
                f"{type(error).__name__}: {error}") from error
        except redis.exceptions.ResponseError as error:
            if "WRONGTYPE" in str(error):
                raise SessionSchemaError(
                    f"cannot {what}: a key under {self.prefix!r} in Redis at {self.where} is "
                    f"not kimi-agent's ({error}): use another prefix") from error
            raise SessionError(f"cannot {what} in Redis at {self.where}: {error}") from error
        except redis.exceptions.RedisError as error:
            raise SessionError(f"cannot {what} in Redis at {self.where}: {error}") from error

    async def _open(self, what: str) -> aioredis.Redis:
        if self._closed:
            raise SessionError(f"cannot {what}: the Redis store {self.where} is closed")
        async with self._opening:
            if self._client is None:
                self._client = aioredis.Redis.from_url(
                    self.url, socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout, decode_responses=False,
                    health_check_interval=30)
            if not self._ready:
                await self._check_layout(self._client)
                self._ready = True
            return self._client

    async def _check_layout(self, client: aioredis.Redis) -> None:
        mark = _MARK + str(LAYOUT_VERSION).encode()
        key = self.key("schema")
        await client.set(key, mark, nx=True)
        found: Any = await client.get(key)
        if found == mark:
            return
        if isinstance(found, bytes) and found.startswith(_MARK):
            version = found[len(_MARK):].decode("ascii", "replace")
            raise SessionSchemaError(
                f"Redis at {self.where} holds kimi-agent key layout {version} under "
                f"{self.prefix!r}, not {LAYOUT_VERSION}: upgrade kimi-agent")
        raise SessionSchemaError(
            f"Redis at {self.where}: {key!r} holds {found[:40]!r}, not kimi-agent's version "
            "mark: the prefix is in use by something else (pass another prefix=)")
