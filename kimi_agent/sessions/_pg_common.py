"""What the PostgreSQL session store and limiter share: the pool, the schema and its
migrations, and turning driver errors into typed session errors.

The schema lives in ordinary tables prefixed `kimi_agent_`, with `kimi_agent_schema` recording
the version. Creating and migrating it happens inside one transaction that first takes a
transaction-scoped advisory lock, so replicas starting together migrate once. A database whose
tables carry our names but not our version row is somebody else's: `SessionSchemaError`,
nothing is touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from kimi_agent.errors import SessionError, SessionSchemaError, SessionStoreUnavailableError

__all__ = ["SCHEMA_VERSION", "PgPool", "advisory_key", "redact"]

SCHEMA_VERSION = 1
"""1: sessions, messages, session state, limiter slots."""
_COMPONENT = "kimi_agent.sessions"
_MIGRATION_LOCK = 0x6B696D69  # "kimi": serialises schema creation
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE kimi_agent_sessions (
            session_id TEXT PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        """CREATE TABLE kimi_agent_messages (
            session_id TEXT NOT NULL REFERENCES kimi_agent_sessions (session_id)
                ON DELETE CASCADE,
            seq BIGINT NOT NULL,
            role TEXT NOT NULL,
            json TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (session_id, seq))""",
        """CREATE TABLE kimi_agent_session_state (
            session_id TEXT NOT NULL,
            key TEXT NOT NULL,
            json TEXT NOT NULL,
            PRIMARY KEY (session_id, key))""",
        "CREATE INDEX kimi_agent_sessions_updated ON kimi_agent_sessions (updated_at DESC)",
        "CREATE SEQUENCE kimi_agent_limiter_tickets",
        """CREATE TABLE kimi_agent_limiter_slots (
            key TEXT NOT NULL,
            holder TEXT NOT NULL,
            ticket BIGINT NOT NULL,
            holding BOOLEAN NOT NULL DEFAULT false,
            expires_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (key, holder))""",
        "CREATE INDEX kimi_agent_limiter_queue ON kimi_agent_limiter_slots (key, ticket)",
    ],
}
_OURS = ("kimi_agent_sessions", "kimi_agent_messages", "kimi_agent_session_state",
         "kimi_agent_limiter_slots")


def redact(url: str) -> str:
    """`url` without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "<unparsable PostgreSQL URL>"
    host, port, db = info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname")
    return f"postgresql://{info.get('user', '')}@{host}:{port}/{db or ''}"


def advisory_key(*parts: str) -> tuple[int, int]:
    """Two signed 32-bit ints naming `parts` for `pg_advisory_lock(int, int)`. A collision
    only makes two conversations wait for each other; it never lets two runs overlap."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest[:4], "big", signed=True),
            int.from_bytes(digest[4:], "big", signed=True))


class PgPool:
    """A lazily opened `AsyncConnectionPool` (autocommit connections, checked before use so a
    restarted server is reconnected to), with the schema ensured on first use.

    `timeout` bounds how long an operation waits for a connection: a server that is down
    raises `SessionStoreUnavailableError` after it.
    """

    def __init__(self, url: str, *, min_size: int, max_size: int, timeout: float) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise SessionError(
                f"a PostgreSQL URL starts with postgresql://, not {str(url)[:40]!r}")
        self.url = url
        self.where = redact(url)
        self.timeout = timeout
        self._sizes = (min_size, max_size)
        self._pool: AsyncConnectionPool[Any] | None = None
        self._ready = False
        self._opening = anyio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection for `what` ("append to session 'x'"); driver errors become
        typed session errors naming `what` and the server."""
        pool = await self._open(what)
        try:
            async with pool.connection(timeout=self.timeout) as connection:
                yield connection
        except PoolTimeout as error:
            raise SessionStoreUnavailableError(
                f"cannot {what}: PostgreSQL at {self.where} did not give a connection within "
                f"{self.timeout:g} s (is the server up?)") from error
        except psycopg.Error as error:
            raise translate(error, what, self.where) from error

    async def _open(self, what: str) -> AsyncConnectionPool[Any]:
        if self._closed:
            raise SessionError(f"cannot {what}: the PostgreSQL store {self.where} is closed")
        async with self._opening:
            if self._pool is None:
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self.url, min_size=self._sizes[0], max_size=self._sizes[1], open=False,
                    kwargs={"autocommit": True}, timeout=self.timeout,
                    check=AsyncConnectionPool.check_connection, reconnect_timeout=0,
                    name="kimi-agent")
                await pool.open(wait=False)
                self._pool = pool
            if not self._ready:
                try:
                    async with self._pool.connection(timeout=self.timeout) as connection:
                        await ensure_schema(connection, self.where)
                except PoolTimeout as error:
                    raise SessionStoreUnavailableError(
                        f"cannot {what}: PostgreSQL at {self.where} is unreachable (no "
                        f"connection within {self.timeout:g} s)") from error
                except psycopg.Error as error:
                    raise translate(error, what, self.where) from error
                self._ready = True
            return self._pool


def translate(error: psycopg.Error, what: str, where: str) -> SessionError:
    """The typed error for a driver error: connection trouble is "unavailable"."""
    text = f"cannot {what} in PostgreSQL at {where}: {type(error).__name__}: {error}".strip()
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return SessionStoreUnavailableError(text)
    return SessionError(text)


async def ensure_schema(connection: psycopg.AsyncConnection[Any], where: str) -> None:
    """Create or migrate the schema to `SCHEMA_VERSION` (once, under an advisory lock).

    Raises:
        SessionSchemaError: our table names hold a foreign schema, or the version is newer.
    """
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        version = await _version(connection, where)
        if version > SCHEMA_VERSION:
            raise SessionSchemaError(
                f"PostgreSQL at {where} has kimi-agent schema version {version}, newer than "
                f"this kimi-agent understands ({SCHEMA_VERSION}): upgrade kimi-agent")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                await connection.execute(statement)
        if version < SCHEMA_VERSION:
            await connection.execute(
                "INSERT INTO kimi_agent_schema (component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (_COMPONENT, SCHEMA_VERSION))


async def _version(connection: psycopg.AsyncConnection[Any], where: str) -> int:
    cursor = await connection.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name LIKE 'kimi\\_agent\\_%%'")
    tables = {row[0] for row in await cursor.fetchall()}
    if "kimi_agent_schema" not in tables:
        found = sorted(tables.intersection(_OURS))
        if found:
            raise SessionSchemaError(
                f"PostgreSQL at {where} has tables named {', '.join(found)} but no "
                "kimi_agent_schema version table: they are not kimi-agent's (use another "
                "database or schema)")
        await connection.execute(
            "CREATE TABLE kimi_agent_schema (component TEXT PRIMARY KEY, version INT NOT NULL)")
        return 0
    try:
        cursor = await connection.execute(
            "SELECT version FROM kimi_agent_schema WHERE component = %s", (_COMPONENT,))
    except psycopg.errors.UndefinedColumn as error:
        raise SessionSchemaError(
            f"PostgreSQL at {where}: table kimi_agent_schema is not kimi-agent's version "
            f"table ({error})") from error
    row = await cursor.fetchone()
    if row is None:
        found = sorted(tables.intersection(_OURS))
        if found:
            raise SessionSchemaError(
                f"PostgreSQL at {where} has tables named {', '.join(found)} that "
                "kimi_agent_schema does not account for: they are not kimi-agent's")
        return 0
    if not isinstance(row[0], int):
        raise SessionSchemaError(f"PostgreSQL at {where}: kimi_agent_schema is not ours")
    return row[0]
