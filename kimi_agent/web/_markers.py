"""`RunClaims`: a replica's run markers in the conversation book (see `_book`).

Before a run starts, the service claims the conversation's marker; it renews it every third
of the lease while the run lives, puts the run's id on it once the run has one, and removes
it when the run ends. A marker another replica holds means the conversation is busy there:
`conversation_busy` at once, without waiting for the store's conversation lock.
"""

from __future__ import annotations

import logging
import uuid

import anyio

from kimi_agent.errors import SessionError
from kimi_agent.web._book import Book, RunMarker
from kimi_agent.web._errors import WebError, store_unavailable

__all__ = ["RunClaims"]

log = logging.getLogger("kimi_agent.web")


class RunClaims:
    """The run markers `replica` puts in `book`, each for `lease` seconds at a time."""

    def __init__(self, book: Book, replica: str, lease: float) -> None:
        self.book = book
        self.replica = replica
        self.lease = lease
        self._run_ids: dict[str, str] = {}      # claim → the run id put on its marker

    async def claim(self, session_id: str, customer_id: str) -> str:
        """Claim the conversation's marker for a new run; the claim's token.

        Raises:
            WebError: a run is under way there, here or on another replica (409
                `conversation_busy`, naming the run and whether it is elsewhere; the
                replica's name is for staff, not told to customers), or the book cannot be
                reached (503 `store_unavailable`; the server's address is logged only).
        """
        claim = uuid.uuid4().hex
        mine = RunMarker(session_id, claim, customer_id, self.replica, None, 0.0)
        try:
            held = await self.book.claim_run(mine, self.lease)
        except SessionError as error:
            raise store_unavailable(error) from None
        if held.claim != claim:
            raise WebError(409, "conversation_busy", "上一条消息还在回复中，请稍候。"
                           " A run is under way in this conversation"
                           f"{'' if held.replica == self.replica else ' on another replica'}.",
                           run_id=held.run_id, elsewhere=held.replica != self.replica)
        return claim

    async def keep(self, session_id: str, claim: str, customer_id: str,
                   scope: anyio.CancelScope) -> None:
        """Renew the marker every third of the lease until `scope` is cancelled. A book
        that is briefly unreachable is retried at the next renewal; a marker that lapsed
        meanwhile (the book was down for longer than the lease) is claimed again unless
        another replica took the conversation over."""
        with scope:
            while True:
                await anyio.sleep(self.lease / 3)
                try:
                    if await self.book.renew_run(session_id, claim, self.lease):
                        continue
                    again = RunMarker(session_id, claim, customer_id, self.replica,
                                      self._run_ids.get(claim), 0.0)
                    held = await self.book.claim_run(again, self.lease)
                    if held.claim != claim:
                        log.warning("the run marker of session %s lapsed and was taken "
                                    "over", session_id)
                        return
                    log.warning("the run marker of session %s had lapsed: claimed again",
                                session_id)
                except SessionError as error:
                    log.warning("could not renew the run marker of session %s: %s",
                                session_id, error)

    async def mark(self, session_id: str, claim: str, run_id: str) -> None:
        """Put the run's id on its marker, for readers on other replicas."""
        self._run_ids[claim] = run_id
        try:
            await self.book.renew_run(session_id, claim, self.lease, run_id=run_id)
        except SessionError as error:
            log.warning("could not record run %s on its marker: %s", run_id, error)

    async def end(self, session_id: str, claim: str) -> None:
        """Remove the marker (even while being cancelled, for at most 10 s; a marker that
        cannot be removed lapses after the lease by itself)."""
        self._run_ids.pop(claim, None)
        with anyio.move_on_after(10, shield=True):
            try:
                await self.book.end_run(session_id, claim)
            except SessionError as error:
                log.warning("could not end the run marker of session %s: %s", session_id,
                            error)
