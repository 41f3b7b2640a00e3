"""The web layer's errors: each one an HTTP status, a stable code and a clear message."""

from __future__ import annotations

from typing import Any

from kimi_agent.errors import KimiAgentError

__all__ = ["WebError"]


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
