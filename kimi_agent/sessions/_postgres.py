"""`PostgresSession` / `PostgresStore`: conversations on a PostgreSQL server, shared by replicas.

```python
store = PostgresStore("postgresql://bot@db.internal/support")   # one pool per process
session = store.session("customer-42")
result = await agent.run("我的订单 A1024 到哪了？", session=session)
await store.list_sessions(), await store.delete_session("customer-7")
await store.aclose()                                             # or `async with store:`

async with PostgresSession("customer-42", "postgresql://…") as session: ...  # its own pool
```

Guarantees (the same as `SQLiteSession`'s):
- Every `add_items` call is one transaction: the upsert of the session row takes that row's
  lock, so two writers on one conversation queue and number their messages `seq` 0, 1, 2, …
  without gaps or crossings (`(session_id, seq)` is the primary key).
- Messages are stored as the JSON text `model_dump(mode="json")` gives (`ensure_ascii=False`),
  so Chinese text, `reasoning_content`, tool-call ids and the answering `model` come back
  exactly. `get_items(limit)` and `get_since(position)` read only the rows asked for.
- `lock(timeout=...)`: one run per conversation across replicas. A session-level advisory lock
  taken on a dedicated connection that lives exactly as long as the run: a replica that dies
  drops its connection and PostgreSQL releases the lock at once. While the lock is held, each
  write of the session first checks (in its transaction, in `pg_locks`) that the lock's
  connection still holds it, so a holder that lost its lock cannot interleave with the next.
- Server down: `SessionStoreUnavailableError` after `timeout` seconds; pooled connections are
  checked before use, so the same store works again once the server is back.
- Foreign or newer schema: `SessionSchemaError` (see `_pg_common`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import psycopg

from kimi_agent.errors import ConversationBusyError, SessionError
from kimi_agent.sessions._pg_common import PgPool, advisory_key, translate
from kimi_agent.sessions._sqlite import _dump_all, _load
from kimi_agent.wire import Message, dumps

__all__ = ["PostgresSession", "PostgresStore"]


class PostgresStore:
    """Many conversations in one PostgreSQL database, behind one connection pool.

    `url` is a libpq URL (`postgresql://user:password@host:5432/db`). `timeout` bounds the wait
    for a connection (a server that is down raises `SessionStoreUnavailableError` after it);
    `min_size` / `max_size` size the pool. The pool opens, and the schema is created or
    migrated, on first use. Close with `aclose()` or `async with store:`.

    Raises:
        SessionError: `url` is not a PostgreSQL URL.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, min_size: int = 1,
                 max_size: int = 10) -> None:
        self.pool = PgPool(url, min_size=min_size, max_size=max_size, timeout=timeout)
        self.url = url

    def __repr__(self) -> str:
        return f"PostgresStore({self.pool.where!r})"

    def session(self, session_id: str) -> PostgresSession:
        """A session of this store (closing it leaves the store open)."""
        return PostgresSession(session_id, store=self)

    @property
    def closed(self) -> bool:
        return self.pool.closed

    async def aclose(self) -> None:
        """Close the pool. Idempotent."""
        await self.pool.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def list_sessions(self) -> list[str]:
        """The ids of the stored sessions, most recently updated first.

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        async with self.pool.connection("list sessions") as connection:
            cursor = await connection.execute(
                "SELECT session_id FROM kimi_agent_sessions ORDER BY updated_at DESC, "
                "session_id")
            return [row[0] for row in await cursor.fetchall()]

    async def delete_session(self, session_id: str) -> None:
        """Delete a session, its messages and its state (a no-op for an unknown id).

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        async with self.pool.connection(f"delete session {session_id!r}") as connection, \
                connection.transaction():
            await connection.execute(
                "DELETE FROM kimi_agent_session_state WHERE session_id = %s", (session_id,))
            await connection.execute(
                "DELETE FROM kimi_agent_sessions WHERE session_id = %s", (session_id,))


class PostgresSession:
    """A conversation stored in PostgreSQL (see the module docstring for the guarantees).

    `PostgresSession("customer-42", "postgresql://…")` opens its own pool (closed by
    `aclose()`); `store.session("customer-42")` shares the pool of a `PostgresStore`.

    Raises:
        SessionError: an empty session id, a bad URL, or both a URL and a store.
    """

    def __init__(self, session_id: str, url: str | None = None, *,
                 store: PostgresStore | None = None, timeout: float = 10.0) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise SessionError(f"a session id must be a non-empty str, not {session_id!r}")
        if "\x00" in session_id:
            raise SessionError(f"a PostgreSQL session id cannot contain NUL: {session_id!r}")
        if (store is None) == (url is None):
            raise SessionError("give either a PostgreSQL URL or a store (exactly one)")
        self.session_id = session_id
        self._owns_store = store is None
        self._holder: tuple[int, int, int] | None = None
        """While this session holds its lock: the lock connection's backend pid and the key."""
        self.store = store if store is not None else PostgresStore(
            url or "", timeout=timeout, max_size=4)

    def __repr__(self) -> str:
        return f"PostgresSession({self.session_id!r}, {self.store.pool.where!r})"

    @property
    def conversation_key(self) -> tuple[str, str]:
        """The server and database, and the session id (runs on one key are serialised)."""
        return (self.store.pool.where, self.session_id)

    def _connection(self, what: str) -> Any:
        return self.store.pool.connection(f"{what} session {self.session_id!r}")

    # ------------------------------------------------------------------ the protocol

    async def get_items(self, limit: int | None = None) -> list[Message]:
        """The history, oldest first; with `limit`, only the newest `limit` messages.

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
            SessionError: a stored row is not a valid message.
        """
        if limit is not None and limit <= 0:
            return []
        async with self._connection("read") as connection:
            if limit is None:
                cursor = await connection.execute(
                    "SELECT seq, json FROM kimi_agent_messages WHERE session_id = %s "
                    "ORDER BY seq", (self.session_id,))
                rows = await cursor.fetchall()
            else:
                cursor = await connection.execute(
                    "SELECT seq, json FROM kimi_agent_messages WHERE session_id = %s "
                    "ORDER BY seq DESC LIMIT %s", (self.session_id, limit))
                rows = list(reversed(await cursor.fetchall()))
        return [_load(self.session_id, seq, text) for seq, text in rows]

    async def get_since(self, position: int) -> list[Message]:
        """The messages at `position` (0-based) and after, oldest first: one range read.

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        async with self._connection("read") as connection:
            cursor = await connection.execute(
                "SELECT seq, json FROM kimi_agent_messages WHERE session_id = %s AND seq >= %s "
                "ORDER BY seq", (self.session_id, max(0, position)))
            rows = await cursor.fetchall()
        return [_load(self.session_id, seq, text) for seq, text in rows]

    async def add_items(self, items: Sequence[Message]) -> None:
        """Append messages in one transaction: all of them are stored, or none.

        Raises:
            SessionError: an item is not a message (nothing is written).
            SessionStoreUnavailableError: the server cannot be reached (nothing is written,
                unless the connection dropped during the commit itself).
        """
        rows = _dump_all(self.session_id, items)
        if not rows:
            return
        async with self._connection("append to") as connection, connection.transaction():
            await self._check_held(connection, "append to")
            await connection.execute(
                "INSERT INTO kimi_agent_sessions (session_id) VALUES (%s) "
                "ON CONFLICT (session_id) DO UPDATE SET updated_at = now()",
                (self.session_id,))
            cursor = await connection.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM kimi_agent_messages "
                "WHERE session_id = %s", (self.session_id,))
            row = await cursor.fetchone()
            last = int(row[0]) if row else -1
            async with connection.cursor() as many:
                await many.executemany(
                    "INSERT INTO kimi_agent_messages (session_id, seq, role, json) "
                    "VALUES (%s, %s, %s, %s)",
                    [(self.session_id, last + 1 + i, role, text)
                     for i, (role, text, _) in enumerate(rows)])

    async def pop_item(self) -> Message | None:
        """Remove and return the newest message (None when the session is empty).

        Raises:
            SessionStoreUnavailableError: the server cannot be reached.
        """
        async with self._connection("pop from") as connection, connection.transaction():
            await connection.execute(
                "SELECT 1 FROM kimi_agent_sessions WHERE session_id = %s FOR UPDATE",
                (self.session_id,))
            cursor = await connection.execute(
                "DELETE FROM kimi_agent_messages WHERE session_id = %s AND seq = "
                "(SELECT MAX(seq) FROM kimi_agent_messages WHERE session_id = %s) "
                "RETURNING seq, json", (self.session_id, self.session_id))
            row = await cursor.fetchone()
        return None if row is None else _load(self.session_id, row[0], row[1])

    async def clear_session(self) -> None:
        """Forget the whole conversation (messages, state and its row)."""
        await self.store.delete_session(self.session_id)

    async def get_state(self, key: str) -> Any:
        """The value stored under `key` for this session, or None.

        Raises:
            SessionError: `key` contains NUL (PostgreSQL text cannot hold it).
        """
        _check_key(key)
        async with self._connection(f"read state {key!r} of") as connection:
            cursor = await connection.execute(
                "SELECT json FROM kimi_agent_session_state WHERE session_id = %s AND key = %s",
                (self.session_id, key))
            row = await cursor.fetchone()
        return None if row is None else json.loads(row[0])

    async def get_all_state(self) -> dict[str, Any]:
        """Every state value of this session, by key (for copying a conversation)."""
        async with self._connection("read the state of") as connection:
            cursor = await connection.execute(
                "SELECT key, json FROM kimi_agent_session_state WHERE session_id = %s "
                "ORDER BY key", (self.session_id,))
            rows = await cursor.fetchall()
        return {key: json.loads(text) for key, text in rows}

    async def set_state(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`; None deletes it. One transaction.

        Raises:
            SessionError: `key` contains NUL (PostgreSQL text cannot hold it).
            ConversationBusyError: this session's lock was lost with its connection.
        """
        _check_key(key)
        text = None if value is None else dumps(value)
        async with self._connection(f"write state {key!r} of") as connection, \
                connection.transaction():
            await self._check_held(connection, f"write state {key!r} of")
            if text is None:
                await connection.execute(
                    "DELETE FROM kimi_agent_session_state WHERE session_id = %s AND key = %s",
                    (self.session_id, key))
            else:
                await connection.execute(
                    "INSERT INTO kimi_agent_session_state (session_id, key, json) "
                    "VALUES (%s, %s, %s) ON CONFLICT (session_id, key) "
                    "DO UPDATE SET json = excluded.json", (self.session_id, key, text))

    # ------------------------------------------------------------------ the lock

    @asynccontextmanager
    async def lock(self, timeout: float | None = 30.0) -> AsyncIterator[None]:
        """Hold this conversation against every other replica for the block.

        A PostgreSQL advisory lock on a connection of its own, opened for the block and
        closed after it: if this process dies, the server drops the connection and the lock
        with it. While it is held, this session's writes check that the lock is still held
        (and raise `ConversationBusyError` if its connection was lost). The agent takes it
        for each run (`Agent.run(..., session=...)`). Re-entrant on this session object.

        Raises:
            ConversationBusyError: another holder kept it for `timeout` seconds.
            SessionStoreUnavailableError: the server cannot be reached.
        """
        if self._holder is not None:  # re-entered by the same holder (a host, then the agent)
            yield
            return
        pool = self.store.pool
        what = f"lock session {self.session_id!r}"
        key = advisory_key("kimi_agent.conversation", self.session_id)
        try:
            connection = await psycopg.AsyncConnection.connect(
                pool.url, autocommit=True, connect_timeout=max(1, int(pool.timeout)))
        except psycopg.Error as error:
            raise translate(error, what, pool.where) from error
        try:
            await self._acquire(connection, key, timeout, what)
            self._holder = (connection.info.backend_pid, *key)
            try:
                yield
            finally:
                self._holder = None
                with anyio.CancelScope(shield=True):
                    # Closing the connection below releases it as well.
                    with contextlib.suppress(psycopg.Error):
                        await connection.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        finally:
            with anyio.CancelScope(shield=True):
                await connection.close()

    async def _check_held(self, connection: psycopg.AsyncConnection[Any], what: str) -> None:
        """Fencing: while this session holds its lock, a write checks (in its transaction)
        that the lock's connection still holds it. A lock lost with its connection (a server
        restart, a network cut) may have been taken by another replica since."""
        if self._holder is None:
            return
        pid, high, low = self._holder
        cursor = await connection.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2",
            (pid, high & 0xFFFFFFFF, low & 0xFFFFFFFF))
        if await cursor.fetchone() is None:
            raise ConversationBusyError(
                f"cannot {what} session {self.session_id!r}: its conversation lock was lost "
                "with its connection and another run may hold it now; nothing was written")

    async def _acquire(self, connection: psycopg.AsyncConnection[Any], key: tuple[int, int],
                       timeout: float | None, what: str) -> None:
        pause = 0.02
        try:
            with anyio.move_on_after(timeout) as waited:
                while True:
                    cursor = await connection.execute(
                        "SELECT pg_try_advisory_lock(%s, %s)", key)
                    row = await cursor.fetchone()
                    if row and row[0]:
                        return
                    await anyio.sleep(pause)
                    pause = min(pause * 1.5, 0.25)
        except psycopg.Error as error:
            raise translate(error, what, self.store.pool.where) from error
        if waited.cancelled_caught:
            raise ConversationBusyError(
                f"session {self.session_id!r} is busy: another replica's run held it for "
                f"{timeout:g} s")

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the pool this session opened (a shared store stays open)."""
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> PostgresSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def _check_key(key: str) -> None:
    if not isinstance(key, str) or "\x00" in key:
        raise SessionError(f"a state key must be a str without NUL, not {key!r}")
