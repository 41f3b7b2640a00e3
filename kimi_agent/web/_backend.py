"""`open_backend(url)`: the session store, conversation book and gateway limiter of a web
service, all from one store URL — what `kimi-agent serve --store URL --concurrency N` and the
web service example use.

- `memory`, `sqlite:///file.db`: one host. The store and the book share the SQLite file (the
  book in its own tables); processes on that host may share the file. The gateway cap
  (`concurrency`) is this process's own (an int: a `FairLimiter` in the client).
- `postgresql://…`, `redis://…`: replicas on several hosts share the store, the book (and so
  the run markers, hand-offs and approvals) and, with `concurrency`, one gateway cap through
  the same server (`PostgresLimiter` / `RedisLimiter`) under a key derived from the API key
  (a hash, never the key itself) or the `limiter_key` given: replicas using the same account
  share one cap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kimi_agent.errors import ConfigurationError
from kimi_agent.web._book import Book, open_book

__all__ = ["STORE_FORMS", "WebBackend", "check_store_url", "open_backend"]

STORE_FORMS = "memory, sqlite:///PATH, postgresql://… or redis://…"
_SHARED = {"postgresql": "postgres", "postgres": "postgres", "redis": "redis",
           "rediss": "redis", "unix": "redis"}


@dataclass
class WebBackend:
    """What `open_backend` made: `store` (the sessions), `book`, `concurrency` (for
    `GatewayClient(concurrency=...)`: None, an int, or a shared limiter), whether they are
    `shared` across hosts, and `where` (the URL without a password). Close with `aclose()`
    or `async with`."""

    store: Any
    book: Book
    concurrency: Any
    shared: bool
    where: str

    async def aclose(self) -> None:
        """Close the store, the book and a shared limiter."""
        try:
            await self.store.aclose()
        finally:
            try:
                await self.book.aclose()
            finally:
                close = getattr(self.concurrency, "aclose", None)
                if close is not None:
                    await close()

    async def __aenter__(self) -> WebBackend:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def check_store_url(url: str) -> str:
    """The kind of store `url` names: "memory", "sqlite", "postgres" or "redis".

    Raises:
        ConfigurationError: any other URL (the message names the accepted forms).
    """
    if url in ("memory", "sqlite://:memory:", "sqlite:///:memory:"):
        return "memory"
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite" and url.lower().startswith("sqlite:///") and len(url) > 10:
        return "sqlite"
    if scheme in _SHARED and "://" in url:
        return _SHARED[scheme]
    raise ConfigurationError(f"the store {url!r} is none of the accepted forms: {STORE_FORMS}")


def limiter_key_for(api_key: str | None) -> str:
    """The shared limiter's key for an account: a hash of its API key (replicas with the
    same key share a cap; the key itself is never written to the server)."""
    if not api_key:
        return "gateway"
    return "gateway-" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


def open_backend(url: str, *, concurrency: int | None = None, limiter_key: str | None = None,
                 api_key: str | None = None) -> WebBackend:
    """The store, book and gateway limiter for the store `url` (see the module docstring).
    Nothing connects until first use.

    Raises:
        ConfigurationError: an unknown store URL, or a `concurrency` under 1.
    """
    from kimi_agent.cli._sessions import _shown, open_store

    kind = check_store_url(url)
    if concurrency is not None and (isinstance(concurrency, bool) or concurrency < 1):
        raise ConfigurationError(f"concurrency must be a positive integer, not {concurrency!r}")
    if kind == "memory":
        from kimi_agent.sessions._sqlite import SQLiteStore
        from kimi_agent.web._book_sqlite import ConversationBook

        return WebBackend(SQLiteStore(":memory:"), ConversationBook(), concurrency, False,
                          "memory")
    store = open_store(url)
    book = open_book(url)
    limit: Any = concurrency
    if concurrency is not None and kind != "sqlite":
        key = limiter_key or limiter_key_for(api_key)
        if kind == "postgres":
            from kimi_agent.scale._pg_limiter import PostgresLimiter

            limit = PostgresLimiter(url, key, concurrency)
        else:
            from kimi_agent.scale._redis_limiter import RedisLimiter

            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            prefix = dict(query).get("prefix", "kimi_agent:")
            # the connection's own parameters (db=, ssl_ca_certs=, …) stay, as for the
            # store and the book; only the store's prefix= and lock_ttl= are not Redis's
            rest = urlencode([(k, v) for k, v in query if k not in ("prefix", "lock_ttl")])
            limit = RedisLimiter(urlunsplit(parts._replace(query=rest)), key, concurrency,
                                 prefix=prefix)
    return WebBackend(store, book, limit, kind != "sqlite", _where(_shown(url)))


def _where(url: str) -> str:
    """`url` (its netloc's password masked already) without a `password=` parameter
    either (libpq and redis-py both take one there)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k == "password" for k, _ in query):
        return url
    masked = [(k, "***" if k == "password" else v) for k, v in query]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="*")))
