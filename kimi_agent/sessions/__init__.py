"""Sessions: where a conversation lives between runs, and how it is fitted into the window.

`Session` is the protocol; `MemorySession` keeps a conversation in memory, `SQLiteSession` /
`SQLiteStore` in a SQLite file shared by runs and processes. `TrimPolicy` /
`KeepRecentTurns` choose what is sent when the history outgrows the model's window.
"""

from __future__ import annotations

from kimi_agent.sessions._protocol import (
    MemorySession,
    Session,
    SessionState,
    TokenCountedSession,
    WindowedSession,
    message_tokens,
)
from kimi_agent.sessions._sqlite import SQLiteSession, SQLiteStore, enable_wal
from kimi_agent.sessions._trim import CacheAwareTrim, KeepRecentTurns, TrimPolicy

__all__ = ["CacheAwareTrim", "KeepRecentTurns", "MemorySession", "SQLiteSession", "SQLiteStore",
           "Session", "SessionState", "TokenCountedSession", "TrimPolicy", "WindowedSession",
           "enable_wal", "message_tokens"]
