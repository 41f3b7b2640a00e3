"""`ToolCallRecord`: what one tool call did — the executor's product, kept in each step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CallStatus = Literal["ok", "error", "pending_approval", "rejected"]


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of a step: what the model asked, what came back, how long it took."""

    call_id: str
    name: str
    arguments: str
    """The model's arguments as it sent them (a JSON string)."""
    status: CallStatus = "ok"
    result: str = ""
    """What went back to the model in the tool message."""
    error: str | None = None
    error_type: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)
