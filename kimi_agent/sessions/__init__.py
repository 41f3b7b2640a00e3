"""Sessions: where a conversation lives between runs, and how it is fitted into the window.

`Session` is the protocol; `MemorySession` keeps a conversation in memory, `SQLiteSession` /
`SQLiteStore` in a SQLite file shared by runs and processes, `PostgresSession` /
`PostgresStore` and `RedisSession` / `RedisStore` on servers shared by replicas (the
`postgres` / `redis` extras, imported on first use). `TrimPolicy` /
`KeepRecentTurns` choose what is sent when the history outgrows the model's window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from kimi_agent.sessions._postgres import PostgresSession, PostgresStore
    from kimi_agent.sessions._redis import RedisSession, RedisStore

__all__ = ["CacheAwareTrim", "KeepRecentTurns", "MemorySession", "PostgresSession",
           "PostgresStore", "RedisSession", "RedisStore", "SQLiteSession", "SQLiteStore",
           "Session", "SessionState", "TokenCountedSession", "TrimPolicy", "WindowedSession",
           "enable_wal", "message_tokens"]

_LAZY = {"PostgresSession": "kimi_agent.sessions._postgres",
         "PostgresStore": "kimi_agent.sessions._postgres",
         "RedisSession": "kimi_agent.sessions._redis",
         "RedisStore": "kimi_agent.sessions._redis"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent.sessions' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
