"""`StaffQueues`: what staff read across every conversation and replica — the approval
and hand-off queues, the runs under way, a release — for `ChatService` (kept apart from
the runs themselves, which `_service` drives).

The queues are the conversation book's (shared by the replicas that share it); a release and
a queue clean-up are compare-and-sets on the entry's version, so one replica never
overwrites a newer change of another.
"""

from __future__ import annotations

from typing import Any

from kimi_agent import Agent, PendingApproval
from kimi_agent.web._book import Book, ConversationEntry, RunMarker
from kimi_agent.web._errors import WebError
from kimi_agent.web._runs import RunLogs
from kimi_agent.web._views import Visibility, pending_view

__all__ = ["StaffQueues"]


class StaffQueues:
    """The staff side of a `ChatService` (which sets these attributes)."""

    agent: Agent[Any, Any]
    store: Any
    book: Book
    runs: RunLogs
    replica: str
    staff_view: Visibility
    _busy: set[str]

    async def pending(self, session_id: str) -> list[PendingApproval]:
        """The calls of `session_id` waiting for staff."""
        return await self.agent.pending_approvals(self.store.session(session_id))

    async def approvals_queue(self) -> list[dict[str, Any]]:
        """Every conversation with calls waiting for staff, oldest first."""
        out = []
        entries = await self.book.with_status("pending_approval")
        running = set(self._busy)
        if entries:
            running.update(m.session_id for m in await self.book.live_runs(limit=10_000))
        for entry in entries:
            if entry.session_id in running:
                continue
            pending = await self.pending(entry.session_id)
            if not pending:   # decided meanwhile; unless it changed again since we read it
                await self.book.set(entry.session_id, entry.customer_id, "active",
                                    if_version=entry.version)
                continue
            out.append({"session_id": entry.session_id, "customer_id": entry.customer_id,
                        "since": entry.updated_at,
                        "pending": pending_view(pending, self.staff_view)})
        return out

    async def handoff_queue(self) -> list[dict[str, Any]]:
        """Every conversation held by a person, oldest first."""
        return [_handoff_item(entry) for entry in await self.book.with_status("handoff")]

    async def release(self, session_id: str) -> dict[str, Any]:
        """Give a held conversation back to the bot.

        Raises:
            WebError: the conversation is not held (404 / 409).
        """
        for _ in range(5):
            entry = await self.book.get(session_id)
            if entry is None:
                raise WebError(404, "unknown_conversation",
                               f"no conversation {session_id!r} was served here")
            if entry.status != "handoff":
                raise WebError(409, "not_held", f"conversation {session_id!r} is not held "
                               "by a person")
            if await self.book.set(session_id, entry.customer_id, "active",
                                   if_version=entry.version):
                return {"session_id": session_id, "status": "active"}
        raise WebError(409, "conversation_changing", f"conversation {session_id!r} kept "
                       "changing while it was being released; try again")

    async def running_runs(self) -> list[dict[str, Any]]:
        """The runs under way on every replica sharing the book (this one's first)."""
        out: list[dict[str, Any]] = [
               {"run_id": r.run_id, "session_id": r.session_id, "customer_id": r.customer_id,
                "replica": self.replica} for r in self.runs.running()]
        here = {item["session_id"] for item in out}
        for marker in await self.book.live_runs():
            if marker.session_id not in here:
                out.append({"run_id": marker.run_id, "session_id": marker.session_id,
                            "customer_id": marker.customer_id, "replica": marker.replica})
        return out

    async def elsewhere(self, session_id: str, run_id: str | None) -> RunMarker | None:
        """The marker of a run under way in `session_id` on another replica (`run_id`, or
        any run when None), if there is one."""
        marker = await self.book.run_marker(session_id)
        if marker is None or marker.replica == self.replica:
            return None
        if run_id is not None and marker.run_id not in (run_id, None):
            return None
        return marker

    async def owner(self, session_id: str) -> ConversationEntry | None:
        return await self.book.get(session_id)


def _handoff_item(entry: ConversationEntry) -> dict[str, Any]:
    handoff = entry.handoff
    return {"session_id": entry.session_id, "customer_id": entry.customer_id,
            "since": entry.updated_at,
            "reason": handoff.reason if handoff else None,
            "queue": handoff.queue if handoff else None,
            "summary": handoff.summary if handoff else ""}
