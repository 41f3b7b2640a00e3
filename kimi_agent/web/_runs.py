"""A run's log in this process: the records so far, and readers that follow it live.

A run does not belong to the HTTP request that started it: it runs in the web service's
task group and appends its records here, and any number of readers (the request that
started it, a reconnecting widget, the staff console) read from any offset. So a dropped
connection loses nothing: the run goes on, the session gets every step, and the client
reads the rest with `GET .../events?run_id=...&after=N` (or `Last-Event-ID`).
Finished logs are kept for a while (`RunLogs`, bounded) for late readers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio

from kimi_agent.web._views import Record

__all__ = ["LiveRun", "RunLogs"]


@dataclass(eq=False)
class LiveRun:
    """The log of one run."""

    run_id: str
    session_id: str
    customer_id: str
    records: list[Record] = field(default_factory=list)
    finished: bool = False
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def append(self, record: Record) -> None:
        self.records.append(record)
        self._wake()

    def finish(self) -> None:
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def follow(self, after: int = -1, *, heartbeat: float = 15.0
                     ) -> AsyncIterator[tuple[int, Record] | None]:
        """`(index, record)` for every record after index `after`, as they come, until the
        run is over; None every `heartbeat` seconds without a record (for a keep-alive)."""
        index = after + 1
        while True:
            while index < len(self.records):
                yield index, self.records[index]
                index += 1
            if self.finished:
                return
            changed = self._changed
            with anyio.move_on_after(heartbeat) as scope:
                await changed.wait()
            if scope.cancelled_caught:
                yield None


class RunLogs:
    """The runs of this process by session: the live one, and recent finished ones."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._current: dict[str, LiveRun] = {}
        self._by_id: OrderedDict[str, LiveRun] = OrderedDict()
        self._last: dict[str, LiveRun] = {}

    def current(self, session_id: str) -> LiveRun | None:
        """The run under way in `session_id`, if any."""
        return self._current.get(session_id)

    def latest(self, session_id: str) -> LiveRun | None:
        """The run under way, else the newest finished one still kept."""
        return self._current.get(session_id) or self._last.get(session_id)

    def get(self, run_id: str) -> LiveRun | None:
        return self._by_id.get(run_id)

    def begin(self, run: LiveRun) -> None:
        self._current[run.session_id] = run
        self._by_id[run.run_id] = run
        self._last[run.session_id] = run
        while len(self._by_id) > self.keep:
            oldest = next(iter(self._by_id.values()))
            if not oldest.finished:
                break
            self._by_id.popitem(last=False)
            if self._last.get(oldest.session_id) is oldest:
                del self._last[oldest.session_id]

    def end(self, run: LiveRun) -> None:
        run.finish()
        if self._current.get(run.session_id) is run:
            del self._current[run.session_id]

    def running(self) -> list[LiveRun]:
        return list(self._current.values())
