"""`kimi-agent sessions copy SRC DST`: move conversations between session stores.

    kimi-agent sessions copy sqlite:///support.db postgresql://bot@db/support
    kimi-agent sessions copy postgresql://bot@db/support redis://cache:6379/0?prefix=bot:

Stores are named by URL: `sqlite:///relative.db`, `sqlite:////absolute/path.db`,
`postgresql://…` and `redis://…` (optional query parameters `prefix=` and `lock_ttl=` set the
Redis key prefix and lock expiry). Every conversation is copied with its messages (exactly, in
order) and its state values; the oldest is copied first, so "most recently updated first" stays
the same in the destination. Conversations that already exist in the destination are refused
before anything is written, unless `--replace` is given (they are deleted first). A progress
bar goes to stderr; at the end every copied conversation is read back and its message count and
state compared with the source: a mismatch fails the command (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kimi_agent.errors import ConfigurationError, SessionError

__all__ = ["add_parser", "open_store", "run"]


def add_parser(sub: Any) -> None:
    """Add `sessions` (with `copy`) to the `kimi-agent` sub-command parsers."""
    sessions = sub.add_parser("sessions", help="manage stored conversations")
    actions = sessions.add_subparsers(dest="action", required=True)
    copy = actions.add_parser("copy", help="copy every conversation from one store to another",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    copy.add_argument("src", help="source store URL (sqlite:///file.db, postgresql://…, "
                                  "redis://…)")
    copy.add_argument("dst", help="destination store URL")
    copy.add_argument("--replace", action="store_true",
                      help="replace conversations that already exist in the destination")


def run(args: argparse.Namespace) -> int:
    """Run `kimi-agent sessions ACTION`; the exit status.

    Raises:
        ConfigurationError: a URL that names no known store.
        SessionError: a store cannot be read or written.
    """
    import anyio

    status: int = anyio.run(_copy, args.src, args.dst, args.replace)
    return status


def open_store(url: str, *, must_exist: bool = False) -> Any:
    """The session store a URL names (a `SQLiteStore`, `PostgresStore` or `RedisStore`).

    Redis URLs take `prefix=` and `lock_ttl=` query parameters (`RedisStore`'s arguments).

    Raises:
        ConfigurationError: the URL names no known store, or (`must_exist`) a SQLite file that
            does not exist.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.lower().startswith("sqlite:///"):
            raise ConfigurationError(
                f"a SQLite store URL is sqlite:///relative.db or sqlite:////absolute.db, not "
                f"{url!r}")
        path = url[len("sqlite:///"):]
        if not path:
            raise ConfigurationError(f"the SQLite URL {url!r} names no file")
        if must_exist and not os.path.exists(path):
            raise ConfigurationError(f"the SQLite file {path!r} does not exist")
        from kimi_agent.sessions._sqlite import SQLiteStore

        return SQLiteStore(path)
    if scheme in ("postgresql", "postgres"):
        from kimi_agent.sessions._postgres import PostgresStore

        return PostgresStore(url)
    if scheme in ("redis", "rediss", "unix"):
        from kimi_agent.sessions._redis import RedisStore

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in ("prefix", "lock_ttl")}
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        try:
            lock_ttl = float(ours.get("lock_ttl", "30"))
        except ValueError as error:
            raise ConfigurationError(f"lock_ttl in {url!r} is not a number") from error
        return RedisStore(urlunsplit(parts._replace(query=rest)),
                          prefix=ours.get("prefix", "kimi_agent:"), lock_ttl=lock_ttl)
    raise ConfigurationError(
        f"{url!r} names no session store: use sqlite:///file.db, postgresql://… or redis://…")


async def _copy(src_url: str, dst_url: str, replace: bool) -> int:
    if src_url == dst_url:
        raise ConfigurationError("the source and the destination are the same store")
    source = open_store(src_url, must_exist=True)
    target = open_store(dst_url)
    try:
        ids = list(reversed(await source.list_sessions()))
        existing = set(await target.list_sessions()).intersection(ids)
        if existing and not replace:
            shown = ", ".join(repr(i) for i in sorted(existing)[:5])
            raise SessionError(
                f"{len(existing)} of the conversations already exist in {_shown(dst_url)} "
                f"({shown}"
                f"{', …' if len(existing) > 5 else ''}): nothing was copied; pass --replace "
                "to overwrite them")
        expected: dict[str, tuple[int, dict[str, Any]]] = {}
        bar = _Progress(len(ids))
        for done, session_id in enumerate(ids):
            messages = await source.session(session_id).get_items()
            state = await source.session(session_id).get_all_state()
            if session_id in existing:
                await target.delete_session(session_id)
            destination = target.session(session_id)
            await destination.add_items(messages)
            for key, value in state.items():
                await destination.set_state(key, value)
            expected[session_id] = (len(messages), state)
            bar.show(done + 1, session_id)
        bar.finish()
        wrong = []
        for session_id, (count, state) in expected.items():
            copied = target.session(session_id)
            found = len(await copied.get_items())
            if found != count or await copied.get_all_state() != state:
                wrong.append(f"{session_id!r}: {found} messages, expected {count}")
        total = sum(count for count, _ in expected.values())
        if wrong:
            print(f"copy check FAILED for {len(wrong)} conversation(s): " + "; ".join(wrong[:10]),
                  file=sys.stderr)
            return 1
        print(f"copied {len(expected)} conversations ({total} messages) from "
              f"{_shown(src_url)} to {_shown(dst_url)}; counts checked", file=sys.stderr)
        return 0
    finally:
        await source.aclose()
        await target.aclose()


def _shown(url: str) -> str:
    """`url` without a password, for what the command prints."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


class _Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a line per tenth
    otherwise, so logs stay short)."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total = total
        self.width = width
        self.tty = sys.stderr.isatty()
        self._shown = -1

    def show(self, done: int, label: str) -> None:
        filled = self.width * done // max(1, self.total)
        line = f"copying [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"
        if self.tty:
            print(f"\r{line} {label[:30]:<30}", end="", file=sys.stderr, flush=True)
            return
        tenth = 10 * done // max(1, self.total)
        if tenth != self._shown:
            self._shown = tenth
            print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty and self.total:
            print(file=sys.stderr)
