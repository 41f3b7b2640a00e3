"""`Refusal`: one error answer of the simulated gateway, in the gateway's OpenAI envelope.

The body is `{"error": {"message": ..., "type": ..., "code": ...}}`: `type` as Moonshot or
the gateway gives it, `code` the gateway's machine-readable code (docs/wire/gateway.md's table) when
the gateway documents one, left out for errors Moonshot answers itself (whose body has only
`message` and `type`). Moonshot's messages keep their own fixed openings — many start with
`Invalid request: `, some (`thinking is enabled but …`, `invalid temperature: …`,
`tool_choice '…' is incompatible …`) do not — so error handling written for the real service
matches the simulator's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["INVALID", "Refusal", "bad"]

INVALID = "invalid_request_error"


class Refusal(Exception):
    """An error answer: HTTP status, error `type`, message, gateway `code`, extra headers."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})
        self.code = code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.error_type}
        if self.code is not None:
            error["code"] = self.code
        return {"error": error}


def bad(message: str, *, prefix: bool = True, code: str | None = None) -> Refusal:
    """A 400 `invalid_request_error`, worded `Invalid request: …` unless `prefix` is False."""
    return Refusal(400, INVALID, f"Invalid request: {message}" if prefix else message, code=code)
