"""Sessions: where a conversation lives between runs.

A `Session` is a small async protocol bound to one session id, in the spirit of the OpenAI
Agents SDK's: read the history, append messages, pop the last one, clear. The agent appends
each completed step with one `add_items` call, so a store that writes each call in one
transaction loses at most the step in flight. Messages keep everything the wire needs later:
`reasoning_content`, tool-call ids, and the model that answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from kimi_agent._tokens import estimate_wire_message
from kimi_agent.wire import Message

if TYPE_CHECKING:
    from kimi_agent.sessions._sqlite import SQLiteSession

__all__ = ["MemorySession", "SQLiteSession", "Session", "SessionState", "TokenCountedSession",
           "WindowedSession", "message_tokens"]


@runtime_checkable
class Session(Protocol):
    """The storage of one conversation."""

    session_id: str

    async def get_items(self, limit: int | None = None) -> list[Message]:
        """The history, oldest first; with `limit`, only the newest `limit` messages."""
        ...

    async def add_items(self, items: Sequence[Message]) -> None:
        """Append messages, all or none."""
        ...

    async def pop_item(self) -> Message | None:
        """Remove and return the newest message (None when empty)."""
        ...

    async def clear_session(self) -> None:
        """Forget the whole conversation."""
        ...


@runtime_checkable
class SessionState(Protocol):
    """A session that also keeps small named values beside the conversation (optional).

    The agent uses it for what must survive a process: the decision on an approved call,
    recorded before the call runs (so it never runs twice), and which agent holds the
    conversation. Values are JSON-serialisable; `None` deletes the key.
    """

    async def get_state(self, key: str) -> Any:
        """The value stored under `key`, or None."""
        ...

    async def set_state(self, key: str, value: Any) -> None:
        """Store `value` under `key` (None deletes it), atomically."""
        ...


@runtime_checkable
class WindowedSession(Protocol):
    """A session that can read from a position on, so a run reads what it may send rather
    than the whole history (optional; positions count messages from 0)."""

    async def get_since(self, position: int) -> list[Message]:
        """The messages at `position` and after, oldest first."""
        ...


def message_tokens(message: Message) -> int:
    """The token estimate of one stored message, exactly as the agent counts it when it fits
    the history into the window (its wire form through `kimi_agent._tokens`). A store that
    implements `TokenCountedSession` must return this number (computed when the message is
    written, or later for rows stored before the store kept it)."""
    return estimate_wire_message(message.to_wire())


@runtime_checkable
class TokenCountedSession(Protocol):
    """A session that keeps each message's token estimate beside it (optional).

    With it a run reads the stored window together with the counts it needs to fit the
    history into the model's window, instead of estimating every stored message again on
    every run: the cost of a run then follows what is sent, not the conversation's length.

    For store authors (PostgreSQL, Redis, ...): compute `message_tokens(message)` for each
    message in `add_items` and store it with the message (a column / a field); rows written
    before the store kept it may hold nothing, and are computed when read. The counts must
    be `message_tokens` of the message returned (not of another estimate), positions are
    those of `WindowedSession.get_since`. A store that also implements `WindowedSession`
    and `SessionState` gets the full benefit: the agent reads from the stored window start.
    """

    async def get_since_with_tokens(self, position: int) -> list[tuple[Message, int]]:
        """The messages at `position` (0-based) and after, oldest first, each with its
        `message_tokens` estimate."""
        ...


class MemorySession:
    """A session in this process's memory: for tests, scripts and short-lived bots."""

    def __init__(self, session_id: str = "default", items: Sequence[Message] = ()) -> None:
        self.session_id = session_id
        self._items: list[Message] = list(items)
        self._tokens: list[int | None] = [None] * len(self._items)
        """`message_tokens` of `_items[i]`, computed on first read and kept."""
        self._state: dict[str, Any] = {}
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"MemorySession({self.session_id!r}, {len(self._items)} messages)"

    async def get_items(self, limit: int | None = None) -> list[Message]:
        async with self._lock:
            if limit is None:
                return list(self._items)
            return self._items[-limit:] if limit > 0 else []

    async def get_since(self, position: int) -> list[Message]:
        async with self._lock:
            return self._items[max(0, position):]

    async def get_since_with_tokens(self, position: int) -> list[tuple[Message, int]]:
        """`get_since` with each message's token estimate (each computed once, then kept)."""
        async with self._lock:
            start = max(0, position)
            tokens = self._tokens
            for i in range(start, len(self._items)):
                if tokens[i] is None:
                    tokens[i] = message_tokens(self._items[i])
            return list(zip(self._items[start:], tokens[start:], strict=True))  # type: ignore[arg-type]

    async def add_items(self, items: Sequence[Message]) -> None:
        async with self._lock:
            self._items.extend(items)
            self._tokens.extend([None] * (len(self._items) - len(self._tokens)))

    async def pop_item(self) -> Message | None:
        async with self._lock:
            if not self._items:
                return None
            self._tokens.pop()
            return self._items.pop()

    async def clear_session(self) -> None:
        async with self._lock:
            self._items.clear()
            self._tokens.clear()
            self._state.clear()

    async def get_state(self, key: str) -> Any:
        return self._state.get(key)

    async def set_state(self, key: str, value: Any) -> None:
        if value is None:
            self._state.pop(key, None)
        else:
            self._state[key] = value


def __getattr__(name: str) -> object:
    if name == "SQLiteSession":
        from kimi_agent.sessions._sqlite import SQLiteSession

        return SQLiteSession
    raise AttributeError(f"module 'kimi_agent.sessions' has no attribute {name!r}")
