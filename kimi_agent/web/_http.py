"""HTTP plumbing: credentials, bounded JSON bodies, SSE responses, JSON errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from kimi_agent.web._errors import WebError, store_unavailable
from kimi_agent.web._limits import RateLimiter
from kimi_agent.web._options import WebOptions
from kimi_agent.web._runs import LiveRun
from kimi_agent.web._tokens import Customer, TokenError, staff_key_matches, verify_customer_token
from kimi_agent.web._views import Record, Visibility, for_viewer

__all__ = ["Guard", "error_response", "json_body", "sse_response"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status,
                    media_type="application/json; charset=utf-8")


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    return json_response({"error": {"code": code, "message": message, **details}}, status)


async def web_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WebError)
    response = json_response(exc.body(), exc.status)
    retry = exc.details.get("retry_after")
    if retry is not None:
        response.headers["Retry-After"] = str(max(1, round(retry)))
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                          str(exc.detail))


async def store_error(request: Request, exc: Exception) -> Response:
    """A store or book whose server is down: 503 `store_unavailable` (not a 500 and a
    traceback), the details in the log."""
    return await web_error(request, store_unavailable(exc))


async def server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal", "internal error (the details are in the server log)")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class Guard:
    """Who a request is: a customer (signed token) or staff (the staff key); rate limits."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self.messages = RateLimiter(options.message_limit)
        self.requests = RateLimiter(options.request_limit)

    def customer(self, request: Request, *, message: bool = False) -> Customer:
        """The customer of a request (and one request spent of their limits).

        Raises:
            WebError: no token or a bad one (401), a staff key on a customer endpoint
                (401), over the rate limit (429).
        """
        token = _bearer(request)
        if token is None:
            raise WebError(401, "missing_token", "send the customer token as "
                           "'Authorization: Bearer <token>'")
        try:
            customer = verify_customer_token(self.options.secret, token)
        except TokenError as error:
            raise WebError(401, "invalid_token", str(error)) from None
        for limiter, what in ((self.requests, "requests"),
                              *(((self.messages, "messages"),) if message else ())):
            wait = limiter.take(customer.customer_id)
            if wait > 0:
                raise WebError(429, "rate_limited", f"too many {what}: try again in "
                               f"{wait:.0f} s", retry_after=round(wait, 1))
        return customer

    def staff(self, request: Request) -> None:
        """Check the staff key.

        Raises:
            WebError: staff endpoints are off (403), no credential (401), a customer
                token (403), a wrong key (401).
        """
        key = self.options.staff_key
        if key is None:
            raise WebError(403, "staff_disabled", "staff endpoints are off (no staff key "
                           "is configured)")
        given = _bearer(request)
        if given is None:
            raise WebError(401, "missing_staff_key", "send the staff key as "
                           "'Authorization: Bearer <key>'")
        if staff_key_matches(key, given):
            return
        try:
            verify_customer_token(self.options.secret, given)
        except TokenError:
            raise WebError(401, "invalid_staff_key", "the staff key is not valid") from None
        raise WebError(403, "staff_only", "staff endpoints need the staff key; a customer "
                       "token does not open them")


async def json_body(request: Request, options: WebOptions) -> dict[str, Any]:
    """The request's JSON object, read up to `options.max_body_bytes`.

    Raises:
        WebError: too large (413), not JSON (415/400), not an object (400).
    """
    limit = options.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise WebError(413, "too_large", f"the body may have at most {limit} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise WebError(415, "not_json", "send the body as 'Content-Type: application/json'")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise WebError(413, "too_large", f"the body may have at most {limit} bytes")
    try:
        body = json.loads(chunks.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WebError(400, "bad_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise WebError(400, "bad_json", "the body must be a JSON object")
    return body


def message_text(body: dict[str, Any], options: WebOptions) -> str:
    """The `message` of a body, checked.

    Raises:
        WebError: missing or empty (400), too long (413).
    """
    text = body.get("message")
    if not isinstance(text, str) or not text.strip():
        raise WebError(400, "no_message", 'send {"message": "<the customer\'s text>"}')
    if len(text) > options.max_message_chars:
        raise WebError(413, "message_too_long", f"a message may have at most "
                       f"{options.max_message_chars} characters")
    return text.strip()


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


def sse_frame(run: LiveRun, index: int, record: Record) -> str:
    return f"id: {run.run_id}:{index}\nevent: {record['kind']}\ndata: {dumps(record)}\n\n"


def sse_response(frames: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream; charset=utf-8",
                             headers=SSE_HEADERS)


async def record_frames(run: LiveRun, view: Visibility, *, after: int = -1,
                        heartbeat: float = 15.0) -> AsyncIterator[str]:
    """Our SSE frames of a run as `view` may see them, from after index `after`."""
    async for item in run.follow(after, heartbeat=heartbeat):
        if item is None:
            yield ": keep-alive\n\n"
            continue
        index, record = item
        visible = for_viewer(record, view)
        if visible is not None:
            yield sse_frame(run, index, visible)


async def finished_summary(run: LiveRun, view: Visibility) -> dict[str, Any]:
    """A run as one JSON answer, once it is over (for clients that do not read SSE)."""
    records: list[Record] = []
    async for item in run.follow(-1, heartbeat=3600.0):
        if item is not None and (visible := for_viewer(item[1], view)) is not None:
            records.append(visible)
    done = next((r for r in reversed(records) if r["kind"] == "done"), None)
    error = next((r for r in reversed(records) if r["kind"] == "error"), None)
    pending: list[Record] = next(
        (r["pending"] for r in records if r["kind"] == "approval_requested"), [])
    handoff = next(({k: v for k, v in r.items() if k != "kind"}
                    for r in records if r["kind"] == "handoff"), None)
    return {"run_id": run.run_id, "session_id": run.session_id,
            "status": done["status"] if done else "failed",
            "output": done["output"] if done else None,
            "error": None if error is None else {"code": error["code"],
                                                 "message": error["message"]},
            "pending": pending, "handoff": handoff,
            "tools": [r["name"] for r in records if r["kind"] == "tool_call_started"],
            "usage": next(({k: v for k, v in r.items() if k != "kind"}
                           for r in records if r["kind"] == "usage"), None),
            "events": records}


def parse_after(request: Request, run_id: str) -> int:
    """The index to resume after: `?after=N`, or the `Last-Event-ID` of this run.

    Raises:
        WebError: `after` is not an integer (400).
    """
    after = request.query_params.get("after")
    if after is not None:
        try:
            return max(-1, int(after))
        except ValueError:
            raise WebError(400, "bad_after", "after must be an integer") from None
    last = request.headers.get("last-event-id", "")
    last_run, _, index = last.rpartition(":")
    if last_run == run_id and index.isdigit():
        return int(index)
    return -1


Handler = Callable[[Request], Any]
