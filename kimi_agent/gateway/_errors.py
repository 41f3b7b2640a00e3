"""Turn an error answer of the gateway into the right typed exception (docs/wire/kimi.md#errors).

The body is parsed leniently: Moonshot's `{"error": {"message", "type"}}`, a flat
`{"message", "type"}`, a `{"detail": ...}`, or plain text all give a clear message. The
request and trace ids from the response headers go on the error so that a support ticket
can name the exact call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kimi_agent.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    GatewayError,
    NotFoundError,
    PaymentRequiredError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from kimi_agent.gateway._retry import parse_retry_after

_CONTEXT_LENGTH_MARKERS = ("exceeded model token limit", "input token length too long",
                           "context length", "maximum context")
_QUOTA_MARKERS = ("quota", "insufficient balance", "insufficient_balance", "recharge",
                  "suspended", "billing")
_QUOTA_TYPES = ("exceeded_current_quota_error", "insufficient_quota", "quota_exceeded")
_BODY_PREVIEW = 300

REQUEST_ID_HEADERS = ("msh-request-id", "x-request-id", "request-id")
TRACE_ID_HEADERS = ("x-msh-trace-id", "x-trace-id", "traceparent")


def request_ids(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The (request id, trace id) of a response, from whichever header carries them."""
    request_id = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), None)
    trace_id = next((headers[h] for h in TRACE_ID_HEADERS if h in headers), None)
    return request_id, trace_id


def parse_error_body(body: bytes | str) -> tuple[str, str | None]:
    """(message, type) from an error body of any shape."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, str):
            return inner, _as_str(data.get("type"))
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail") or inner.get("msg")
            error_type = _as_str(inner.get("type") or inner.get("code"))
            if message:
                return str(message), error_type
        if "detail" in data:
            return str(data["detail"]), None
    if not text:
        return "the gateway answered with an empty body", None
    preview = text if len(text) <= _BODY_PREVIEW else text[:_BODY_PREVIEW] + "…"
    return f"the gateway answered with a non-JSON body: {preview}", None


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes | str, *, model: str | None = None
) -> GatewayError:
    """The typed error for an HTTP error answer."""
    message, error_type = parse_error_body(body)
    request_id, trace_id = request_ids(headers)
    lowered = message.lower()
    kind = (error_type or "").lower()
    cls: type[GatewayError]
    retry_after = None
    if status in (400, 413, 422):
        if any(marker in lowered for marker in _CONTEXT_LENGTH_MARKERS):
            cls = ContextLengthError
        elif "content_filter" in kind or "high risk" in lowered or "high-risk" in lowered:
            cls = ContentFilterError
        else:
            cls = BadRequestError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status == 402:
        cls = PaymentRequiredError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        if kind in _QUOTA_TYPES or any(marker in lowered for marker in _QUOTA_MARKERS):
            cls = QuotaExceededError
        else:
            cls = RateLimitError
            retry_after = parse_retry_after(headers)
    elif status >= 500:
        cls = ServerError
        retry_after = parse_retry_after(headers)
    else:
        cls = GatewayError
    return cls(
        message,
        status=status,
        error_type=error_type,
        request_id=request_id,
        trace_id=trace_id,
        model=model,
        retry_after=retry_after,
    )


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)
