"""`ChatService`: runs of one agent for many conversations, behind the HTTP layer.

- **One run per conversation at a time**, across replicas: a second message while a run is
  under way is refused (`conversation_busy`, with the run to follow) instead of queued, so
  two answers never interleave in one history. Before a run starts the service claims the
  conversation's run marker in the book (`Book.claim_run`: the replica's name, the run id
  once known, a lease renewed every third of `WebOptions.run_lease` while the run lives), so
  every replica sharing the book sees the run as `running` and refuses a second message at
  once; a killed replica's marker lapses after the lease. Underneath, the agent itself
  holds the store's conversation lock for each run (`Agent(busy_timeout=...)`); a run that
  cannot get it in time is `conversation_busy` as well.
- **A run's live events are this replica's**: the request that started a run streams it,
  and readers on the same replica can follow it; a reader on another replica is told where
  the run lives (409 `run_on_other_replica`) and reads the shared history once it ends.
- **Runs outlive requests**: each run runs in the service's task group and writes its log
  (`_runs.LiveRun`); the request only reads it. A client that disconnects loses nothing.
- **Held conversations**: a run that ends in a hand-off marks the conversation `handoff`
  in the `ConversationBook`; customer messages are refused (`held_by_person`) until staff
  release it.
- **Shutdown** (leaving `async with service`): new runs are refused (503) and runs under
  way get `shutdown_grace` seconds to finish before they are cancelled.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from kimi_agent import Agent, Session
from kimi_agent import events as ev
from kimi_agent.errors import SessionStoreUnavailableError
from kimi_agent.web._book import Book
from kimi_agent.web._book_sqlite import ConversationBook
from kimi_agent.web._errors import WebError, before_start, single_error, store_unavailable
from kimi_agent.web._markers import RunClaims
from kimi_agent.web._options import WebOptions
from kimi_agent.web._queues import StaffQueues
from kimi_agent.web._runs import LiveRun, RunLogs
from kimi_agent.web._tokens import Customer
from kimi_agent.web._views import (
    DEFAULT_TOOL_LABELS,
    Visibility,
    error_record,
    event_records,
    pending_view,
)

__all__ = ["ChatService", "SessionStore"]

log = logging.getLogger("kimi_agent.web")


class SessionStore(Protocol):
    """Anything that gives the session of an id (`SQLiteStore`, and stores like it)."""

    def session(self, session_id: str) -> Session: ...


DepsFactory = Callable[[Customer], Any]


class ChatService(StaffQueues):
    """The runs of `agent` on the sessions of `store` (see the module docstring).

    `deps(customer)` gives the deps of a run for one customer (e.g. tools that see only
    that customer's orders); without it runs get no deps. `book` records where each
    conversation stands and which runs are under way (default: an in-memory one; replicas
    share one: `open_book(url)`). `replica` names this process in run markers (default:
    host, process id and a random tag). Use it as `async with service:`.
    """

    def __init__(self, agent: Agent[Any, Any], store: SessionStore, options: WebOptions, *,
                 deps: DepsFactory | None = None, book: Book | None = None,
                 replica: str | None = None) -> None:
        self.agent = agent
        self.store = store
        self.options = options
        self.deps = deps
        self._own_book = book is None
        self.book: Book = book if book is not None else ConversationBook()
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.claims = RunClaims(self.book, self.replica, options.run_lease)
        labels = {**DEFAULT_TOOL_LABELS, **options.tool_labels}
        self.customer_view = Visibility(reasoning=options.show_reasoning,
                                        tool_details=options.show_tool_details, labels=labels)
        self.staff_view = Visibility(staff=True, reasoning=True, tool_details=True,
                                     labels=labels)
        self.runs = RunLogs()
        self._busy: set[str] = set()
        self._group: TaskGroup | None = None
        self._closing = False
        self._idle = anyio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ChatService:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group, self._closing = group, False
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        group = self._group
        self._closing = True
        try:
            if group is not None:
                with anyio.move_on_after(self.options.shutdown_grace):
                    while self._busy:
                        await self._idle.wait()
                group.cancel_scope.cancel()
                await group.__aexit__(None, None, None)
        finally:
            self._group = None
            if self._own_book:
                await self.book.aclose()

    @property
    def running(self) -> int:
        """How many runs are under way."""
        return len(self._busy)

    # ------------------------------------------------------------------ starting runs

    async def send(self, customer: Customer, text: str) -> LiveRun:
        """Start a run of the customer's message; returns its log once it has started.

        Raises:
            WebError: the conversation is busy (409 `conversation_busy`), held by a person
                (409 `held_by_person`), waiting for approval (409 `awaiting_approval`), or
                the service is shutting down (503).
        """
        async def check(session: Session) -> None:
            entry = await self.book.create(customer.session_id, customer.customer_id)
            if entry.customer_id != customer.customer_id:
                raise WebError(403, "not_your_conversation",
                               "this conversation belongs to another customer")
            if entry.status == "handoff":
                raise WebError(409, "held_by_person", "这段对话已转给人工客服，请等待工作人员回复。"
                               " The conversation is held by a person.")
            if await self.agent.pending_approvals(session):
                raise WebError(409, "awaiting_approval", "上一步操作正在等待人工审核，请稍候。"
                               " A call is waiting for staff approval.")

        def start(session: Session, deps: Any) -> AbstractAsyncContextManager[Any]:
            return self.agent.stream(text, deps=deps, session=session)

        return await self._start(customer, check, start)

    async def decide(self, session_id: str, approved: Sequence[str],
                     rejected: Mapping[str, str]) -> LiveRun:
        """Start the run that carries out staff's decisions on the pending calls.

        Raises:
            WebError: unknown conversation (404), decisions that do not match the pending
                calls (409 `approval_mismatch`), the conversation is busy (409), or the
                service is shutting down (503).
        """
        entry = await self.book.get(session_id)
        if entry is None:
            raise WebError(404, "unknown_conversation",
                           f"no conversation {session_id!r} was served here")
        customer = Customer(entry.customer_id, session_id)

        async def check(session: Session) -> None:
            return None

        def start(session: Session, deps: Any) -> AbstractAsyncContextManager[Any]:
            return self.agent.resume_stream(session, approved=approved, rejected=rejected,
                                            deps=deps)

        return await self._start(customer, check, start)

    async def _start(self, customer: Customer, check: Callable[[Session], Any],
                     start: Callable[[Session, Any], AbstractAsyncContextManager[Any]]
                     ) -> LiveRun:
        if self._closing or self._group is None:
            raise WebError(503, "unavailable", "the service is not running (starting up or "
                           "shutting down); try again shortly")
        session_id = customer.session_id
        if session_id in self._busy:
            current = self.runs.current(session_id)
            raise WebError(409, "conversation_busy", "上一条消息还在回复中，请稍候。"
                           " A run is under way in this conversation.",
                           run_id=current.run_id if current else None)
        self._busy.add(session_id)
        claim: str | None = None
        try:
            claim = await self.claims.claim(customer.session_id, customer.customer_id)
            run: LiveRun = await self._group.start(self._drive, customer, check, start, claim)
        except BaseException:
            # a run that did not start (or never began to) leaves its claim and the busy
            # mark to us, so another request that came meanwhile keeps its own
            if claim is not None:
                await self.claims.end(session_id, claim)
            self._release(session_id)
            raise
        return run

    def _release(self, session_id: str) -> None:
        self._busy.discard(session_id)
        if not self._busy:
            idle, self._idle = self._idle, anyio.Event()
            idle.set()

    async def _drive(self, customer: Customer, check: Callable[[Session], Any],
                     start: Callable[[Session, Any], AbstractAsyncContextManager[Any]],
                     claim: str, *, task_status: TaskStatus[LiveRun]) -> None:
        session_id = customer.session_id
        run: LiveRun | None = None
        started = False
        keeper = anyio.CancelScope()
        assert self._group is not None
        self._group.start_soon(self.claims.keep, session_id, claim, customer.customer_id,
                               keeper)
        try:
            session = self.store.session(session_id)
            try:
                await check(session)
                deps = self.deps(customer) if self.deps is not None else None
                async with start(session, deps) as stream:
                    async for event in stream:
                        if run is None:
                            run = self._begin(customer, event)
                            await self.claims.mark(session_id, claim, run.run_id)
                            task_status.started(run)
                            started = True
                        self._log(run, event)
                    if run is not None:
                        await self._settle(customer, run, stream.result)
            except Exception as raised:
                error = single_error(raised)
                if run is None:
                    raise before_start(error) from None
                await self._failed(customer, run, error)
        finally:
            keeper.cancel()
            if started:      # else `_start` ends the claim and frees the conversation
                await self.claims.end(session_id, claim)
            if run is not None:
                if not run.records or run.records[-1]["kind"] not in ("done", "error"):
                    run.append(error_record("interrupted", "回答被中断了（服务正在重启），请稍后"
                                            "重新发送。The run was interrupted."))
                self.runs.end(run)
            if started:
                self._release(session_id)

    def _begin(self, customer: Customer, event: ev.Event) -> LiveRun:
        run_id = event.run_id if isinstance(event, ev.RunStarted) else "run"
        run = LiveRun(run_id, customer.session_id, customer.customer_id)
        self.runs.begin(run)
        return run

    def _log(self, run: LiveRun, event: ev.Event) -> None:
        for record in event_records(event, session_id=run.session_id, labels=self.staff_view):
            run.append(record)

    async def _settle(self, customer: Customer, run: LiveRun, result: Any) -> None:
        status = result.status
        if status == "handoff":
            await self.book.set(customer.session_id, customer.customer_id, "handoff",
                                result.handoff)
        else:
            await self.book.set(customer.session_id, customer.customer_id,
                                "pending_approval" if status == "pending_approval"
                                else "active")

    async def _failed(self, customer: Customer, run: LiveRun, error: Exception) -> None:
        log.warning("run %s of session %s failed: %s", run.run_id, run.session_id, error)
        if isinstance(error, SessionStoreUnavailableError):   # its text names the server
            run.append(error_record("store_unavailable", store_unavailable(error).message))
        else:
            run.append(error_record("run_failed", f"{type(error).__name__}: {error}"))
        try:
            session = self.store.session(customer.session_id)
            pending = await self.agent.pending_approvals(session)
            await self.book.set(customer.session_id, customer.customer_id,
                                "pending_approval" if pending else "active")
        except Exception:
            log.exception("could not record the state of session %s", run.session_id)

    # ------------------------------------------------------------------ reading state

    async def state(self, session_id: str, view: Visibility) -> dict[str, Any]:
        """Where a conversation stands: running, waiting for approval, held, or idle; the
        run to follow; the calls waiting."""
        entry = await self.book.get(session_id)
        pending = await self.agent.pending_approvals(self.store.session(session_id))
        current = self.runs.current(session_id)
        latest = self.runs.latest(session_id)
        marker = await self.book.run_marker(session_id) if current is None else None
        run: dict[str, Any] | None = None
        if current is None and marker is not None:
            run = {"run_id": marker.run_id, "finished": False, "events": None,
                   "elsewhere": marker.replica != self.replica,
                   **({"replica": marker.replica} if view.staff else {})}
        elif latest is not None:
            run = {"run_id": latest.run_id, "finished": latest.finished,
                   "events": len(latest.records), "elsewhere": False,
                   **({"replica": self.replica} if view.staff else {})}
        if current is not None or marker is not None:
            status = "running"
        elif entry is not None and entry.status == "handoff":
            status = "handoff"
        elif pending:
            status = "pending_approval"
        else:
            status = "idle"
        handoff = entry.handoff if entry is not None and entry.status == "handoff" else None
        return {
            "session_id": session_id,
            "status": status,
            "run": run,
            "pending": pending_view(pending, view),
            "handoff": None if handoff is None else {
                "reason": handoff.reason, "queue": handoff.queue,
                **({"summary": handoff.summary} if view.staff else {})},
        }


@asynccontextmanager
async def serving(service: ChatService) -> AsyncIterator[ChatService]:
    """`async with service` as a function (for lifespans)."""
    async with service:
        yield service
