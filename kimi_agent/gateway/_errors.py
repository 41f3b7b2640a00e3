"""Turn an error answer of the gateway into the right typed exception (docs/wire/gateway.md).

The class is decided by the envelope's machine-readable `code` first (the gateway's:
`context_length_exceeded`, `model_not_found`, `concurrency_limit`, ...), then by its `type`
(Moonshot's `engine_overloaded_error`, ..., or the gateway's Anthropic-style names), then by
the wording of the message (Moonshot's `exceeded model token limit`, the spend cap's
`rate_limit_5h exceeded: ...`), and last by the HTTP status. The body is parsed leniently: the
OpenAI envelope, a flat `{"message", "type"}`, a `{"detail": ...}`, an error wrapped the
OpenRouter way (`error.metadata.raw` holding the upstream's own envelope), or plain text all
give a clear message. The ids of the call go on the error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kimi_agent.errors import (
    AuthenticationError,
    BadRequestError,
    ConcurrencyLimitError,
    ContentFilterError,
    ContextLengthError,
    GatewayError,
    InsufficientBalanceError,
    KeyQuotaExceededError,
    ModelNotAvailableError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    SpendCapError,
)
from kimi_agent.gateway._headers import (
    call_info,
    parse_retry_after,
    reset_from_message,
    reset_time,
)

_BODY_PREVIEW = 300
_MAX_UNWRAP = 4

_CODES: dict[str, type[GatewayError]] = {
    "context_length_exceeded": ContextLengthError,
    "model_not_found": ModelNotAvailableError,
    "unsupported_model": ModelNotAvailableError,
    "model_not_in_group": ModelNotAvailableError,
    "model_not_allowed": ModelNotAvailableError,
    "insufficient_balance": InsufficientBalanceError,
    "quota_exceeded": KeyQuotaExceededError,
    "concurrency_limit": ConcurrencyLimitError,
    "permission_denied": PermissionDeniedError,
    "invalid_api_key": AuthenticationError,
}
"""The gateway's documented codes (errors reference)."""

_GENERIC_CODES = {"invalid_param": BadRequestError, "not_found": NotFoundError}
"""Codes that name a family, refined by the wording (a model named in a 404, ...)."""

_TYPES: dict[str, type[GatewayError]] = {
    "content_filter": ContentFilterError,
    "exceeded_current_quota_error": QuotaExceededError,
    "insufficient_quota": QuotaExceededError,
    "quota_exceeded": QuotaExceededError,
    "rate_limit_reached_error": RateLimitError,
    "engine_overloaded_error": RateLimitError,
    "overloaded_error": RateLimitError,
    "invalid_authentication_error": AuthenticationError,
    "incorrect_api_key_error": AuthenticationError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "permission_denied_error": PermissionDeniedError,
    "server_error": ServerError,
    "unexpected_output": ServerError,
    "api_error": ServerError,
}
"""Moonshot's `type`s and the gateway's Anthropic-style ones."""

_CONTEXT_LENGTH = ("exceeded model token limit", "input token length too long",
                   "context length", "maximum context", "context window")
_CONTENT_FILTER = ("high risk", "high-risk")
_BALANCE = ("insufficient balance", "insufficient_balance", "recharge", "suspended")
_QUOTA = ("quota", "billing")
_MODEL_UNAVAILABLE = re.compile(
    r"model\b[^.;,]{0,40}\b(not found|not exist|does not exist|is not supported|unsupported|"
    r"retired|not in (?:the )?(?:key's )?group|not allowed|not available)|(not found|unknown|"
    r"unsupported|invalid) (?:the )?model\b", re.IGNORECASE)
_SPEND_CAP = re.compile(r"rate_limit_\w+ exceeded|spend (?:cap|limit)|resets? at",
                        re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What an error body says: message, `type`, `code`, a numeric status it names, the
    body's own request id."""

    message: str
    error_type: str | None = None
    code: str | None = None
    status: int | None = None
    body_id: str | None = None


def parse_error_body(body: bytes | str | Mapping[str, Any]) -> ErrorInfo:
    """The `ErrorInfo` of an error body of any shape (never raises)."""
    if isinstance(body, Mapping):
        data: Any = body
        text = ""
    else:
        text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body).strip()
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if isinstance(data, dict):
        info = _from_envelope(data, depth=0)
        if info is not None:
            return info
    if not text:
        return ErrorInfo("the gateway answered with an empty body")
    preview = text if len(text) <= _BODY_PREVIEW else text[:_BODY_PREVIEW] + "…"
    return ErrorInfo(f"the gateway answered with a non-JSON body: {preview}")


def _from_envelope(data: dict[str, Any], depth: int) -> ErrorInfo | None:
    body_id = _as_str(data.get("id") or data.get("request_id"))
    inner = data.get("error", data)
    if isinstance(inner, str):
        return ErrorInfo(inner, _as_str(data.get("type")), _code(data.get("code")),
                         _status(data.get("code")) or _status(data.get("status")), body_id)
    if not isinstance(inner, dict):
        if "detail" in data:
            return ErrorInfo(str(data["detail"]), body_id=body_id)
        return None
    wrapped = _unwrap_raw(inner, depth)
    message = inner.get("message") or inner.get("detail") or inner.get("msg")
    raw_code = inner.get("code")
    info = ErrorInfo(
        str(message) if message else "",
        _as_str(inner.get("type")),
        _code(raw_code),
        _status(raw_code) or _status(inner.get("status")) or _status(data.get("status")),
        body_id or _as_str(inner.get("request_id") or inner.get("id")),
    )
    if wrapped is not None:
        # OpenRouter: the outer message is generic ("Provider returned error"); the upstream's
        # own envelope in metadata.raw is what says why.
        return ErrorInfo(
            wrapped.message or info.message,
            wrapped.error_type or info.error_type,
            wrapped.code or info.code,
            wrapped.status or info.status,
            info.body_id or wrapped.body_id,
        )
    if not info.message:
        if "detail" in data:
            return ErrorInfo(str(data["detail"]), info.error_type, info.code, info.status,
                             info.body_id)
        return None if not (info.error_type or info.code) else ErrorInfo(
            info.code or info.error_type or "", info.error_type, info.code, info.status,
            info.body_id)
    return info


def _unwrap_raw(inner: dict[str, Any], depth: int) -> ErrorInfo | None:
    metadata = inner.get("metadata")
    if depth >= _MAX_UNWRAP or not isinstance(metadata, dict) or "raw" not in metadata:
        return None
    raw = metadata["raw"]
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return ErrorInfo(raw.strip()) if raw.strip() else None
    if isinstance(raw, dict):
        return _from_envelope(raw, depth + 1)
    return None


def classify(info: ErrorInfo, status: int | None) -> type[GatewayError]:
    """The error class of an answer: by code, then type, then wording, then status."""
    code = (info.code or "").lower()
    kind = (info.error_type or "").lower()
    lowered = info.message.lower()
    status = status or info.status
    if code in _CODES:
        return _CODES[code]
    if code in _GENERIC_CODES or kind in ("invalid_request_error", "not_found_error",
                                          "resource_not_found_error", "request_too_large"):
        return _by_wording(lowered, kind, status) or _GENERIC_CODES.get(code) or _by_status(
            status, lowered)
    if (kind == "rate_limit_error" and not code) or (
            status in (429, None) and _SPEND_CAP.search(info.message)):
        # The gateway's spend cap: type rate_limit_error and no code (its concurrency cap
        # carries code concurrency_limit, taken above).
        return ConcurrencyLimitError if "concurren" in lowered else SpendCapError
    if kind in _TYPES:
        found = _TYPES[kind]
        if found is QuotaExceededError and any(m in lowered for m in _BALANCE[:2]):
            return InsufficientBalanceError
        if found is RateLimitError and status is not None and status >= 500:
            return ServerError  # "overloaded" on a 503: the gateway's 5xx rule applies
        return found
    return _by_wording(lowered, kind, status) or _by_status(status, lowered)


def _by_wording(lowered: str, kind: str, status: int | None) -> type[GatewayError] | None:
    if any(marker in lowered for marker in _CONTEXT_LENGTH):
        return ContextLengthError
    if "content_filter" in kind or any(marker in lowered for marker in _CONTENT_FILTER):
        return ContentFilterError
    if _MODEL_UNAVAILABLE.search(lowered):
        return ModelNotAvailableError
    if status in (402, 429) or status is None:
        if any(marker in lowered for marker in _BALANCE[:2]):
            return InsufficientBalanceError
        if any(marker in lowered for marker in _BALANCE[2:] + _QUOTA):
            return QuotaExceededError if status != 402 else PaymentRequiredError
        if "concurrency" in lowered:
            return ConcurrencyLimitError
    return None


def _by_status(status: int | None, lowered: str) -> type[GatewayError]:
    if status is None:
        return ServerError  # a failure reported inside a 200 stream: the model failed mid-way
    if status in (400, 413, 422):
        return BadRequestError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 402:
        return PaymentRequiredError
    if status == 404:
        return ModelNotAvailableError if "model" in lowered else NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return GatewayError


def error_from_response(
    status: int | None, headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any], *, model: str | None = None, stream: bool = False,
    request_id: str | None = None,
) -> GatewayError:
    """The typed error for an error answer: an HTTP error status, or (status None) an error
    frame inside a 200 stream. `request_id` is a known id to fall back on (the stream's)."""
    info = parse_error_body(body)
    cls = classify(info, status)
    call = call_info(headers, model=model or "", status=status or info.status, stream=stream,
                     body_id=info.body_id or request_id)
    retry_after = parse_retry_after(headers)
    message = info.message or f"the gateway answered {status}"
    kwargs: dict[str, Any] = {
        "status": status if status is not None else info.status,
        "error_type": info.error_type, "code": info.code, "request_id": call.request_id,
        "trace_id": call.trace_id, "request_ids": call.request_ids, "model": model,
        "retry_after": retry_after, "call": call,
    }
    if cls is SpendCapError:
        reset = reset_time(headers.get("x-ratelimit-reset")) or reset_from_message(message)
        return SpendCapError(message, reset_at=reset, **kwargs)
    if cls is ModelNotAvailableError:
        return ModelNotAvailableError(
            f"{message} (model {model!r} is not available to this key)" if model else message,
            **kwargs)
    return cls(message, **kwargs)


def _as_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _code(value: Any) -> str | None:
    """A string code; a numeric `code` (OpenRouter puts the status there) is not one."""
    if value is None or isinstance(value, bool | int | float):
        return None
    text = str(value).strip()
    return None if not text or text.isdigit() else text


def _status(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
        return int(value)
    return None
