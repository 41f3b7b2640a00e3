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
    """The exception's class name; "timeout_unknown_outcome" for a sync tool abandoned at
    its timeout (see `outcome_unknown`), "NotFinished" for a call its step could not finish."""
    started_at: float = 0.0
    finished_at: float = 0.0
    outcome_unknown: bool = False
    """True when the call's work may have happened (or may still happen) although it did not
    report back: a sync tool still running past its timeout, an interrupted call. The model
    was told not to repeat it; a person or a reconciliation job should check the effect."""

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)
