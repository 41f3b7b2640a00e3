"""The web layer's errors: each one an HTTP status, a stable code and a clear message."""

from __future__ import annotations

import logging
from typing import Any

from kimi_agent.errors import (
    ApprovalError,
    ConversationBusyError,
    KimiAgentError,
    SessionStoreUnavailableError,
)

__all__ = ["WebError", "before_start", "single_error", "store_unavailable"]

log = logging.getLogger("kimi_agent.web")


class WebError(KimiAgentError):
    """A request the web layer refuses: answered as `{"error": {"code", "message"}}` with
    `status` (a 4xx, or 503 while shutting down). `code` is stable for clients to branch
    on (e.g. `conversation_busy`, `held_by_person`, `awaiting_approval`)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def single_error(error: Exception) -> Exception:
    """The one error inside (nested) exception groups of one error, else `error`: a
    streamed run's task group wraps what the run raised."""
    while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def store_unavailable(error: Exception) -> WebError:
    """The 503 `store_unavailable` a client hears when the store's (or the book's) server
    is down. The driver's message names the server (host, port, user): it goes to the log,
    not to customers."""
    log.warning("the conversation store is unavailable: %s", error)
    return WebError(503, "store_unavailable", "客服系统暂时无法连接，请稍后再试。 The "
                    "conversation store cannot be reached; try again shortly.", retry_after=5)


def before_start(error: Exception) -> Exception:
    """What the request that asked for a run hears when it could not start."""
    if isinstance(error, WebError):
        return error
    if isinstance(error, SessionStoreUnavailableError):
        return store_unavailable(error)
    if isinstance(error, ApprovalError):
        return WebError(409, "approval_mismatch", str(error))
    if isinstance(error, ConversationBusyError):
        return WebError(409, "conversation_busy", "the conversation is busy in another "
                        "process; try again shortly")
    if isinstance(error, KimiAgentError):
        return WebError(502, "run_failed", f"the agent could not start: {error}")
    return error
