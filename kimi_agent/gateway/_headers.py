"""What a response's headers say besides the body: ids, spend-cap and quota state, waits.

The gateway reports the tightest USD spend bucket of the key and the remaining credits on
every response, success or failure, before the first stream event (docs/wire/gateway.md,
"Headers"): `X-RateLimit-Limit`, `X-RateLimit-Remaining` (USD), `X-RateLimit-Reset` (Unix
seconds), `X-Quota-Remaining-Credits`, `X-Org-Quota-Remaining-Credits`. Moonshot adds its own
request and trace ids (`Msh-Request-Id`, `X-Msh-Trace-Id`); any other `*request-id` /
`*trace-id` header a proxy on the way adds is kept too, so a support ticket can name the call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from kimi_agent.wire import CallInfo

REQUEST_ID_HEADERS = ("msh-request-id", "x-request-id", "request-id")
TRACE_ID_HEADERS = ("x-msh-trace-id", "x-trace-id", "traceparent")
_ID_SUFFIXES = ("request-id", "trace-id", "requestid", "traceid")
_EPOCH_MIN = 1_000_000_000.0
"""A reset value below this is read as seconds from now, above it as a Unix timestamp."""
_RESETS_AT = re.compile(
    r"resets?\s+(?:at\s+)?(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?\s*"
    r"(UTC|GMT|Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)


def id_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Every request / trace id header of a response, lower-cased names."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "traceparent" or lowered.endswith(_ID_SUFFIXES):
            found[lowered] = value
    return found


def request_ids(
    headers: Mapping[str, str], body_id: str | None = None
) -> tuple[str | None, str | None, dict[str, str]]:
    """(request id, trace id, all ids) of a response; the body's `id` is the request id of
    last resort and is kept as `"id"` in the mapping."""
    ids = id_headers(headers)
    request_id = next((ids[h] for h in REQUEST_ID_HEADERS if h in ids), None)
    if request_id is None:
        request_id = next((v for k, v in ids.items() if "request" in k), None)
    trace_id = next((ids[h] for h in TRACE_ID_HEADERS if h in ids), None)
    if trace_id is None:
        trace_id = next((v for k, v in ids.items() if "trace" in k), None)
    if body_id:
        ids["id"] = body_id
        request_id = request_id or body_id
    return request_id, trace_id, ids


def call_info(
    headers: Mapping[str, str], *, model: str, status: int | None, stream: bool,
    body_id: str | None = None, attempts: int = 1, latency_s: float | None = None,
) -> CallInfo:
    """The `CallInfo` of one answer."""
    request_id, trace_id, ids = request_ids(headers, body_id)
    return CallInfo(
        model=model, status=status, stream=stream, attempts=attempts, latency_s=latency_s,
        request_id=request_id, trace_id=trace_id, request_ids=ids,
        rate_limit_limit=_number(headers.get("x-ratelimit-limit")),
        rate_limit_remaining=_number(headers.get("x-ratelimit-remaining")),
        rate_limit_reset=reset_time(headers.get("x-ratelimit-reset")),
        quota_remaining_credits=_number(headers.get("x-quota-remaining-credits")),
        org_quota_remaining_credits=_number(headers.get("x-org-quota-remaining-credits")),
    )


def reset_time(value: str | None, *, now: float | None = None) -> datetime | None:
    """`X-RateLimit-Reset` as a UTC datetime: Unix seconds (documented), or tolerated forms:
    seconds from now (a small number), an HTTP date or an ISO timestamp."""
    if value is None:
        return None
    value = value.strip()
    number = _number(value)
    if number is not None:
        if number < _EPOCH_MIN:
            number += time.time() if now is None else now
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def reset_from_message(message: str) -> datetime | None:
    """The reset time a spend-cap message states (`... resets at 2026-05-25 14:00:00 UTC`);
    a time without a zone is read as UTC."""
    match = _RESETS_AT.search(message)
    if match is None:
        return None
    day, clock, zone = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    suffix = "+00:00" if zone is None or zone.upper() in ("UTC", "GMT", "Z") else zone
    if len(suffix) == 5:  # +0800
        suffix = suffix[:3] + ":" + suffix[3:]
    try:
        return datetime.fromisoformat(f"{day}T{clock}{suffix}").astimezone(UTC)
    except ValueError:
        return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds from delta-seconds or an HTTP date; None when absent or bad."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None
