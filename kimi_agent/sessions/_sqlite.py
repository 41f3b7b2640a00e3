"""`SQLiteSession`: the embedded session store, one SQLite file shared by runs and processes.

```python
session = SQLiteSession("customer-42", "support.db")       # a conversation in a file
result = await agent.run("我的订单 A1024 到哪了？", session=session)
session.close()                                             # or `async with SQLiteSession(...)`

store = SQLiteStore("support.db")                           # a service: one connection,
session = store.session("customer-42")                      # many conversations
await store.list_sessions(), await store.delete_session("customer-7")
```

Durability: every `add_items` call is one `BEGIN IMMEDIATE … COMMIT` transaction, and the agent
commits each completed step with one call, so a crash (even `kill -9`) loses at most the step
in flight and never leaves half a step behind. The file is in WAL mode with
`synchronous=FULL` by default (a committed step survives a power cut too; pass
`synchronous="NORMAL"` to trade that for fewer fsyncs: it still survives a process crash).

Concurrency, and why this design:
- sqlite3 calls block, so each runs in a worker thread (`anyio.to_thread.run_sync`) and the
  event loop keeps serving other runs. A worker call is not abandoned on cancel, so a
  transaction is always finished or rolled back by the thread that began it.
- One connection per `SQLiteStore`, used by one thread at a time under a `threading.Lock`.
  A sqlite3 connection must not be used by two threads at once; a connection per worker
  thread would leave connections in anyio's thread pool that nobody can close. The lock
  costs nothing a writer would not pay anyway: SQLite admits one writer at a time.
- Between stores and between processes, SQLite's own locking decides: in WAL mode readers
  never wait for the writer; writes take the write lock up front (`BEGIN IMMEDIATE`, so a
  read lock is never upgraded into a deadlock) and wait up to `timeout` seconds for it.
- Each session's messages are numbered by `seq` inside the write transaction, with
  `(session_id, seq)` as primary key: two writers can never interleave or cross messages.

Schema (created on first use; `PRAGMA user_version` records its version):
`sessions(session_id PRIMARY KEY, created_at, updated_at)` and
`messages(session_id, seq, role, json, created_at, tokens)` and
`session_state(session_id, key, json)` (version 2; an older file gains what it lacks on first
use). `tokens` is the message's token estimate (`message_tokens`), written with the message so
a run need not estimate the stored window again; rows written before version 3 hold NULL and
are estimated when read (`get_since_with_tokens`). `json` is the message as
`model_dump(mode="json")` gives it, with Chinese text kept as is (`ensure_ascii=False`):
`reasoning_content`, tool-call ids byte for byte, the answering `model`, and any extra field
the gateway sent. There is no module-level state: everything lives in the store object.
WAL needs a local file system (not NFS/SMB).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ValidationError

from kimi_agent.errors import SessionError
from kimi_agent.sessions._protocol import message_tokens
from kimi_agent.wire import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
    _message_adapter,
    dumps,
)

__all__ = ["SCHEMA_VERSION", "SQLiteSession", "SQLiteStore", "enable_wal"]

SCHEMA_VERSION = 2
"""1: sessions and messages; 2: adds `session_state` (small named values per session).
The `messages.tokens` column is added to a file that lacks it without a version change:
it is optional for readers and writers (NULL means "not estimated yet"), so processes of an
older kimi-agent keep working on the same file."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tokens INTEGER,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_state (
    session_id TEXT NOT NULL,
    key TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
) WITHOUT ROWID;
"""
_MESSAGE_TYPES = (SystemMessage, UserMessage, AssistantMessage, ToolMessage)

Synchronous = Literal["FULL", "NORMAL"]
T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SQLiteStore:
    """One SQLite database holding many conversations, behind one connection.

    `path` is a file path (str or `os.PathLike`) or `":memory:"` (a private database that
    lives as long as the store). `timeout` is how long a write waits for another writer
    (another store or process) before `SessionError`. The connection opens, and the schema
    is created, on first use. Close with `close()` or `async with store:`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        timeout: float = 30.0,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        self.path = os.fspath(path)
        self.timeout = timeout
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"SQLiteStore({self.path!r}){state}"

    def session(self, session_id: str) -> SQLiteSession:
        """A session of this store (closing it leaves the store open)."""
        return SQLiteSession(session_id, store=self)

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection (waits for an operation under way). Idempotent."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def aclose(self) -> None:
        """`close()` from async code, without blocking the event loop."""
        await anyio.to_thread.run_sync(self.close)

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    async def run(self, what: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(connection)` in a worker thread, alone on the connection; sqlite3 errors
        become `SessionError`s that say what failed and where."""
        return await anyio.to_thread.run_sync(self._run_locked, what, job)

    def _run_locked(self, what: str, job: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._closed:
                raise SessionError(f"cannot {what}: the SQLite store {self.path!r} is closed")
            try:
                return job(self._connect())
            except sqlite3.Error as error:
                raise SessionError(
                    f"cannot {what} in SQLite database {self.path!r}: "
                    f"{type(error).__name__}: {error}"
                ) from error

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        connection = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if self.path != ":memory:":
                enable_wal(connection, self.timeout)
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            connection.execute("PRAGMA foreign_keys = ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION or not _has_tokens(connection):
                with _write(connection):
                    _create_schema(connection)
            elif version > SCHEMA_VERSION:
                raise SessionError(
                    f"SQLite database {self.path!r} has schema version {version}, newer than "
                    f"this kimi-agent understands ({SCHEMA_VERSION}): upgrade kimi-agent"
                )
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    # ------------------------------------------------------------------ helpers

    async def list_sessions(self) -> list[str]:
        """The ids of the sessions that hold messages, most recently updated first."""
        def job(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute(
                "SELECT session_id FROM sessions ORDER BY updated_at DESC, session_id"
            ).fetchall()
            return [row[0] for row in rows]
        return await self.run("list sessions", job)

    async def delete_session(self, session_id: str) -> None:
        """Delete a session and all its messages (a no-op for an unknown id)."""
        def job(connection: sqlite3.Connection) -> None:
            with _write(connection):
                connection.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
                connection.execute("DELETE FROM session_state WHERE session_id = ?",
                                   (session_id,))
                connection.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        await self.run(f"delete session {session_id!r}", job)


class SQLiteSession:
    """A conversation stored in SQLite: the embedded default `Session`.

    `SQLiteSession("customer-42", "support.db")` opens its own store on that file (closed by
    `close()`); `store.session("customer-42")` shares the connection of a `SQLiteStore`.
    Without a path the store is a private in-memory database. See the module docstring for
    durability and concurrency.
    """

    def __init__(
        self,
        session_id: str,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 30.0,
        synchronous: Synchronous = "FULL",
        store: SQLiteStore | None = None,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise SessionError(f"a session id must be a non-empty str, not {session_id!r}")
        if store is not None and path is not None:
            raise ValueError("give either a path or a store, not both")
        self.session_id = session_id
        self._owns_store = store is None
        self._lock_depth = 0
        self.store = store if store is not None else SQLiteStore(
            ":memory:" if path is None else path, timeout=timeout, synchronous=synchronous
        )

    def __repr__(self) -> str:
        return f"SQLiteSession({self.session_id!r}, {self.store.path!r})"

    @property
    def path(self) -> str:
        return self.store.path

    @property
    def conversation_key(self) -> tuple[str, str]:
        """Names this conversation across session objects: the database file and the id
        (runs on the same key are serialised in-process)."""
        path = self.store.path
        where = f"memory:{id(self.store)}" if path == ":memory:" else os.path.realpath(path)
        return (where, self.session_id)

    # ------------------------------------------------------------------ the protocol

    async def get_items(self, limit: int | None = None) -> list[Message]:
        """The history, oldest first; with `limit`, only the newest `limit` messages."""
        if limit is not None and limit <= 0:
            return []
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> list[Message]:
            if limit is None:
                rows = connection.execute(
                    "SELECT seq, json FROM messages WHERE session_id = ? ORDER BY seq",
                    (session_id,),
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT seq, json FROM messages WHERE session_id = ? "
                    "ORDER BY seq DESC LIMIT ?", (session_id, limit),
                ).fetchall()
                rows.reverse()
            return [_load(session_id, seq, text) for seq, text in rows]

        return await self.store.run(f"read session {session_id!r}", job)

    async def get_since(self, position: int) -> list[Message]:
        """The messages at `position` (0-based) and after, oldest first: one range read."""
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> list[Message]:
            rows = connection.execute(
                "SELECT seq, json FROM messages WHERE session_id = ? AND seq >= ? ORDER BY seq",
                (session_id, max(0, position)),
            ).fetchall()
            return [_load(session_id, seq, text) for seq, text in rows]

        return await self.store.run(f"read session {session_id!r}", job)

    async def get_since_with_tokens(self, position: int) -> list[tuple[Message, int]]:
        """`get_since` with each message's token estimate, read from the `tokens` column
        (estimated now for rows stored before the column existed)."""
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> list[tuple[Message, int]]:
            rows = connection.execute(
                "SELECT seq, json, tokens FROM messages WHERE session_id = ? AND seq >= ? "
                "ORDER BY seq", (session_id, max(0, position)),
            ).fetchall()
            out = []
            for seq, text, tokens in rows:
                message = _load(session_id, seq, text)
                out.append((message, message_tokens(message) if tokens is None else tokens))
            return out

        return await self.store.run(f"read session {session_id!r}", job)

    async def add_items(self, items: Sequence[Message]) -> None:
        """Append messages in one transaction: all of them are stored, or none."""
        rows = _dump_all(self.session_id, items)
        if not rows:
            return
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> None:
            now = _now()
            with _write(connection):
                connection.execute(
                    "INSERT INTO sessions (session_id, created_at, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at",
                    (session_id, now, now),
                )
                last = connection.execute(
                    "SELECT COALESCE(MAX(seq), -1) FROM messages WHERE session_id = ?",
                    (session_id,),
                ).fetchone()[0]
                connection.executemany(
                    "INSERT INTO messages (session_id, seq, role, json, created_at, tokens) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(session_id, last + 1 + i, role, text, now, tokens)
                     for i, (role, text, tokens) in enumerate(rows)],
                )

        await self.store.run(f"append to session {session_id!r}", job)

    async def pop_item(self) -> Message | None:
        """Remove and return the newest message (None when the session is empty)."""
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> Message | None:
            with _write(connection):
                row = connection.execute(
                    "SELECT seq, json FROM messages WHERE session_id = ? "
                    "ORDER BY seq DESC LIMIT 1", (session_id,),
                ).fetchone()
                if row is None:
                    return None
                connection.execute("DELETE FROM messages WHERE session_id = ? AND seq = ?",
                                   (session_id, row[0]))
            return _load(session_id, row[0], row[1])

        return await self.store.run(f"pop from session {session_id!r}", job)

    async def clear_session(self) -> None:
        """Forget the whole conversation (its messages and its row in `sessions`)."""
        await self.store.delete_session(self.session_id)

    async def get_state(self, key: str) -> Any:
        """The value stored under `key` for this session, or None."""
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> Any:
            row = connection.execute(
                "SELECT json FROM session_state WHERE session_id = ? AND key = ?",
                (session_id, key)).fetchone()
            return None if row is None else json.loads(row[0])

        return await self.store.run(f"read state {key!r} of session {session_id!r}", job)

    async def set_state(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`; None deletes it. One transaction."""
        session_id = self.session_id
        text = None if value is None else dumps(value)

        def job(connection: sqlite3.Connection) -> None:
            with _write(connection):
                if text is None:
                    connection.execute(
                        "DELETE FROM session_state WHERE session_id = ? AND key = ?",
                        (session_id, key))
                else:
                    connection.execute(
                        "INSERT INTO session_state (session_id, key, json) VALUES (?, ?, ?) "
                        "ON CONFLICT (session_id, key) DO UPDATE SET json = excluded.json",
                        (session_id, key, text))

        await self.store.run(f"write state {key!r} of session {session_id!r}", job)

    async def get_all_state(self) -> dict[str, Any]:
        """Every state value of this session, by key (for copying a conversation)."""
        session_id = self.session_id

        def job(connection: sqlite3.Connection) -> dict[str, Any]:
            rows = connection.execute(
                "SELECT key, json FROM session_state WHERE session_id = ? ORDER BY key",
                (session_id,)).fetchall()
            return {key: json.loads(text) for key, text in rows}

        return await self.store.run(f"read the state of session {session_id!r}", job)

    @asynccontextmanager
    async def lock(self, timeout: float | None = 30.0) -> AsyncIterator[None]:
        """Hold this conversation against other processes for the block: a `flock` on a lock
        file next to the database (see `_filelock`); the agent takes it for each run. An
        in-memory database is private to this process, where the agent's own lock suffices.
        Re-entrant on this session object (a host holding it around `agent.run` is fine).

        Raises:
            ConversationBusyError: another process held it for `timeout` seconds.
        """
        from kimi_agent.sessions._filelock import conversation_file_lock

        if self._lock_depth or self.store.path == ":memory:":
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        async with conversation_file_lock(self.store.path, self.session_id, timeout):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the store this session opened (a shared store stays open)."""
        if self._owns_store:
            self.store.close()

    async def aclose(self) -> None:
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> SQLiteSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __enter__(self) -> SQLiteSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------- rows


@contextmanager
def _write(connection: sqlite3.Connection) -> Iterator[None]:
    """`BEGIN IMMEDIATE … COMMIT`, or `ROLLBACK` when the block (or the commit) fails."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _create_schema(connection: sqlite3.Connection) -> None:
    # Re-read inside the write transaction: another process may have created it meanwhile.
    if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
    if not _has_tokens(connection):  # an older file: its rows keep NULL (estimated on read)
        connection.execute("ALTER TABLE messages ADD COLUMN tokens INTEGER")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _has_tokens(connection: sqlite3.Connection) -> bool:
    return any(row[1] == "tokens" for row in connection.execute("PRAGMA table_info(messages)"))


def _dump_all(session_id: str, items: Sequence[Message]) -> list[tuple[str, str, int]]:
    """(role, json, tokens) rows of `items`; `SessionError` before anything is written if one of
    them is not a message."""
    if isinstance(items, str | bytes | BaseModel | dict):
        raise SessionError(
            f"add_items() of session {session_id!r} takes a sequence of messages, not a "
            f"{type(items).__name__}: wrap a single message in a list"
        )
    rows: list[tuple[str, str, int]] = []
    for index, item in enumerate(items):
        if not isinstance(item, _MESSAGE_TYPES):
            raise SessionError(
                f"add_items() of session {session_id!r}: item {index} is a "
                f"{type(item).__name__}, not a message (SystemMessage, UserMessage, "
                "AssistantMessage or ToolMessage; kimi_agent.wire.parse_message builds one "
                "from a dict)"
            )
        rows.append((item.role, dumps(item.model_dump(mode="json", exclude_none=True)),
                     message_tokens(item)))
    return rows


def _load(session_id: str, seq: int, text: str) -> Message:
    try:
        # parsed and validated in one pass (pydantic-core reads the JSON): the same message
        # `parse_message(json.loads(text))` gives, for a third less CPU per stored message
        return _message_adapter.validate_json(text)
    except (ValueError, ValidationError) as error:
        raise SessionError(
            f"message {seq} of session {session_id!r} is not a valid stored message: {error}"
        ) from error


def enable_wal(connection: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch the file to WAL unless it already is. Changing the journal mode can fail at
    once with "database is locked" while another connection writes (SQLite does not wait on
    the busy handler for it), so the switch is retried until `timeout`."""
    if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
