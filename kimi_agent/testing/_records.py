"""What the simulator received: one `RecordedRequest` per HTTP request, refused ones too.

Tests assert on these to check what a client sent (body, headers, model) and what it got back
(status, error type, the fault that struck, the reply). The `Authorization` and `x-api-key`
headers are kept when they carry the simulator's own key (a harmless test key) and redacted
otherwise, so a real key sent to the simulator by mistake never ends up in test output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._replies import Reply

__all__ = ["REDACTED", "RecordedRequest", "redact_headers"]

REDACTED = "Bearer <redacted>"


@dataclass
class RecordedRequest:
    index: int
    method: str
    path: str
    headers: dict[str, str]
    """Request headers, names in lower case."""
    raw_body: bytes = b""
    body: Any = None
    """The parsed JSON body (None when it did not parse)."""
    model: str | None = None
    stream: bool = False
    status: int | None = None
    """The HTTP status answered (200 also for a stream that was then dropped or cut)."""
    error_type: str | None = None
    error_code: str | None = None
    """The gateway's `code` of the error answered, if it had one."""
    error_message: str | None = None
    fault: str | None = None
    """The kind of the injected fault that struck this request, if any."""
    reply: Reply | None = None
    tool_call_ids: list[str] = field(default_factory=list)
    cached_tokens: int = 0
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def messages(self) -> list[dict[str, Any]]:
        value = self.body.get("messages") if isinstance(self.body, dict) else None
        return value if isinstance(value, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        value = self.body.get("tools") if isinstance(self.body, dict) else None
        return value if isinstance(value, list) else []

    @property
    def tool_names(self) -> list[str]:
        names = []
        for tool in self.tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict):
                names.append(str(function.get("name")))
        return names


def redact_headers(headers: dict[str, str], api_key: str) -> dict[str, str]:
    """Headers with a foreign `Authorization` or `x-api-key` value replaced by `REDACTED`."""
    value = headers.get("authorization")
    if value is not None and value.strip() != f"Bearer {api_key}":
        headers = {**headers, "authorization": REDACTED}
    key = headers.get("x-api-key")
    if key is not None and key.strip() != api_key:
        headers = {**headers, "x-api-key": "<redacted>"}
    return headers
