"""The ASGI app of the simulator (Starlette): `POST /v1/chat/completions`, `GET /v1/models`.

One request goes: record → authenticate → concurrency cap → parse → strict checks → fault →
answer (script or responder) → render → send, with latency. Every answer, errors included,
carries the gateway's headers before its first byte: `X-Request-Id`, the accounting headers
(`X-RateLimit-*`, `X-Quota-Remaining-Credits`, `X-Org-Quota-Remaining-Credits`) and, when the
simulator models Moonshot behind the gateway (the default), Moonshot's `Msh-Request-Id` and
`X-Msh-Trace-Id`. JSON bodies keep CJK text as is (`ensure_ascii=False`); SSE bodies start
with `data:` (no byte-order mark). Unknown paths and wrong methods get JSON errors too, and
are recorded like everything else.

Dropping a connection: the app raises `DroppedConnection` after part of the answer went out.
Over a real socket uvicorn then closes it abruptly (the client sees an incomplete body); in
process, through `httpx.ASGITransport`, the exception reaches the client directly — it is an
`httpx.RemoteProtocolError`, i.e. the transport error a client would see. A client that
hangs up mid-stream ends the answer quietly (one debug line, no traceback).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kimi_agent.wire import dumps

from ._faults import REPLY_KINDS, Fault
from ._records import RecordedRequest, redact_headers
from ._refusal import Refusal
from ._render import Rendered, completion_body, error_event, make_usage, stream_events
from ._replies import Reply, SimRequest
from ._script import NoScriptMatch
from ._strict import check_auth, check_request, parse_body

if TYPE_CHECKING:
    from ._simulator import GatewaySimulator

__all__ = ["DroppedConnection", "build_app"]

logger = logging.getLogger("kimi_agent.testing")

JSON_TYPE = "application/json; charset=utf-8"
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Every route takes every method, so a wrong one is recorded and answered in JSON."""
_GONE = (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError)
"""What sending to a client that hung up raises (uvicorn's ClientDisconnected is an OSError)."""


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the app to drop a connection on purpose (fault "drop_mid_stream")."""


class _Parts(Response):
    """An answer sent piece by piece: pauses before pieces, then an abrupt drop or the end."""

    def __init__(
        self,
        parts: Sequence[tuple[bytes, float]],
        *,
        headers: dict[str, str],
        media_type: str,
        drop_after: int | None = None,
    ) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.parts = list(parts)
        self.drop_after = drop_after
        self.init_headers(headers)  # no `body` attribute: no Content-Length, chunked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dropped: DroppedConnection | None = None
        async with anyio.create_task_group() as group:

            async def hang_up() -> None:  # stop sending once the client is gone
                while (await receive())["type"] != "http.disconnect":
                    pass
                logger.debug("simulator: the client hung up mid-answer")
                group.cancel_scope.cancel()

            group.start_soon(hang_up)
            try:
                await self._send(send)
            except DroppedConnection as exc:
                dropped = exc  # raised outside the group, so it stays itself
            group.cancel_scope.cancel()
        if dropped is not None:
            raise dropped

    async def _send(self, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            for i, (data, pause) in enumerate(self.parts):
                if self.drop_after is not None and i >= self.drop_after:
                    raise DroppedConnection("simulated fault: connection dropped mid-stream")
                if pause > 0:
                    await anyio.sleep(pause)
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if self.drop_after is not None:
                raise DroppedConnection("simulated fault: connection dropped mid-stream")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except DroppedConnection:
            raise
        except _GONE as exc:
            logger.debug("simulator: the client hung up mid-answer (%s)", type(exc).__name__)


class _InFlight:
    """ASGI middleware counting the requests in flight (until the answer's last byte)."""

    def __init__(self, app: ASGIApp, sim: GatewaySimulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sim = self.sim
        sim.note_client(scope.get("client"))
        sim.in_flight += 1
        sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            sim.in_flight -= 1


def build_app(sim: GatewaySimulator) -> ASGIApp:
    """The ASGI app serving `sim`."""

    async def chat(request: Request) -> Response:
        record, headers = _start(sim, request)
        if request.method != "POST":
            message = f"Method {request.method} not allowed"
            return _error(sim, record, headers, Refusal(405, "invalid_request_error", message))
        return await _chat(sim, request, record, headers)

    async def models(request: Request) -> Response:
        record, headers = _start(sim, request)
        try:
            if request.method != "GET":
                message = f"Method {request.method} not allowed"
                raise Refusal(405, "invalid_request_error", message)
            check_auth(request.headers, sim.api_key)
        except Refusal as refusal:
            return _error(sim, record, headers, refusal)
        data = [
            {
                "id": profile.name,
                "object": "model",
                "created": 0,
                "owned_by": "moonshot",
                "family": "kimi",
                "capabilities": _capabilities(profile.structured_output),
                "context_window": profile.context_window,
                "context_length": profile.context_window,
                "max_output_tokens": profile.max_output,
            }
            for profile in sim.profiles.values()
        ]
        record.status = 200
        return _json({"object": "list", "data": data}, {**headers, **sim.account.headers()})

    async def unknown(request: Request) -> Response:
        record, headers = _start(sim, request)
        message = f"Not found: {request.method} {request.url.path}"
        refusal = Refusal(404, "resource_not_found_error", message, code="not_found")
        return _error(sim, record, headers, refusal)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=_ALL_METHODS),
            Route("/v1/models", models, methods=_ALL_METHODS),
            Route("/{path:path}", unknown, methods=_ALL_METHODS),
        ]
    )
    return _InFlight(app, sim)


def _capabilities(structured: str) -> list[str]:
    json_modes = (
        ["json_mode", "structured_output"] if structured == "json_schema" else ["json_mode"]
    )
    return ["chat", "tools", "streaming", *json_modes]


def _start(sim: GatewaySimulator, request: Request) -> tuple[RecordedRequest, dict[str, str]]:
    request_id = uuid.uuid4().hex
    record = RecordedRequest(
        index=sim.received,
        method=request.method,
        path=request.url.path,
        headers=redact_headers(dict(request.headers), sim.api_key),
        request_id=request_id,
    )
    sim.received += 1
    sim.requests.append(record)
    headers = {"X-Request-Id": request_id}
    if sim.moonshot_headers:
        headers |= {"Msh-Request-Id": request_id, "X-Msh-Trace-Id": uuid.uuid4().hex}
    return record, headers


async def _chat(
    sim: GatewaySimulator, request: Request, record: RecordedRequest, headers: dict[str, str]
) -> Response:
    try:
        raw = await request.body()
    except ClientDisconnect:
        logger.debug("simulator: the client hung up before its request body arrived")
        record.status = 499
        return Response(status_code=499)
    record.raw_body = raw
    try:
        check_auth(request.headers, sim.api_key)
        if sim.concurrency_limit is not None and sim.in_flight > sim.concurrency_limit:
            record.fault = "concurrency_limit"
            raise Fault(None, "concurrency_limit").refusal()
        body = parse_body(raw)
        record.body = body
        record.model = body.get("model") if isinstance(body.get("model"), str) else None
        record.stream = body.get("stream") is True
        checked = check_request(body, sim.profiles)
    except Refusal as refusal:
        return _error(sim, record, headers, refusal)

    fault = sim.faults.pick(checked.model)
    if fault is not None:
        record.fault = fault.kind
        if fault.is_error or (fault.kind == "stream_error" and not checked.stream):
            limit = sim.account.limit_usd
            return _error(sim, record, headers, fault.refusal(checked.model, limit_usd=limit))
        if fault.kind == "slow":
            await anyio.sleep(fault.delay)

    view = SimRequest(
        model=checked.model,
        profile=checked.profile,
        body=body,
        messages=checked.messages,
        tools=checked.tools,
        stream=checked.stream,
        max_tokens=checked.max_tokens,
        response_format=checked.response_format,
        headers=record.headers,
        index=record.index,
    )
    try:
        reply = _mutated(await sim.answer(view), fault)
        calls = reply.calls()
    except NoScriptMatch as exc:
        logger.warning("%s", exc)
        sim.errors.append(exc)
        return _error(sim, record, headers, Refusal(500, "simulator_error", str(exc)))
    except Exception as exc:
        logger.exception("simulator: the responder raised")
        sim.errors.append(exc)
        message = f"simulator: the responder raised {type(exc).__name__}: {exc}"
        return _error(sim, record, headers, Refusal(500, "simulator_error", message))

    ids = sim.ids.make(calls, checked.messages) if calls else []
    if fault is not None and fault.kind in ("duplicate_ids", "empty_ids") and ids:
        ids = [ids[0] if fault.kind == "duplicate_ids" else ""] * len(ids)
    cached = sim.cache.cached_tokens(checked.model, checked.tools, checked.messages)
    usage = make_usage(checked.prompt_tokens, cached, reply, calls)
    no_choices = fault is not None and fault.kind == "no_choices"
    rendered = Rendered.make(checked.model, reply, ids, usage, no_choices=no_choices)
    record.status = 200
    record.reply = reply
    record.tool_call_ids = ids
    record.cached_tokens = cached
    failed = fault is not None and fault.kind in ("stream_error", "drop_mid_stream")
    if not failed:
        sim.account.charge(int(usage["total_tokens"]))  # failures never bill
    headers = {**headers, **sim.account.headers()}
    if checked.stream:
        return _stream(sim, rendered, checked.include_usage, headers, fault)
    return await _complete(sim, rendered, headers, fault)


def _mutated(reply: Reply, fault: Fault | None) -> Reply:
    if fault is None or fault.kind not in REPLY_KINDS:
        return reply
    if fault.kind == "think_only":
        return Reply(reasoning=reply.reasoning or "让我想一想……", usage=reply.usage)
    if not reply.tool_calls:  # ids need calls: give the reply two
        return Reply(
            reasoning=reply.reasoning or "查两个订单。",
            tool_calls=[("get_order", {"order_id": "A1"}), ("get_order", {"order_id": "A2"})],
        )
    return reply


def _stream(
    sim: GatewaySimulator,
    rendered: Rendered,
    include_usage: bool,
    headers: dict[str, str],
    fault: Fault | None,
) -> Response:
    latency = sim.latency
    events = stream_events(rendered, include_usage=include_usage)
    parts = [
        (data, (latency.first_token if i == 0 else 0.0) + latency.for_tokens(tokens))
        for i, (data, tokens) in enumerate(events)
    ]
    drop_after = None
    if fault is not None and fault.kind == "drop_mid_stream":
        wanted = 2 if fault.after_chunks is None else fault.after_chunks
        drop_after = min(wanted, len(parts) - 1)
    elif fault is not None and fault.kind == "cut_before_done":
        keep = len(parts) - 1 if fault.after_chunks is None else fault.after_chunks
        parts = parts[: min(keep, len(parts) - 1)]
    elif fault is not None and fault.kind == "stream_error":
        keep = 2 if fault.after_chunks is None else fault.after_chunks
        frame = error_event(fault.refusal(rendered.model).body())
        parts = [*parts[: min(keep, len(parts) - 1)], (frame, 0.0)]
        if fault.done:
            parts.append((b"data: [DONE]\n\n", 0.0))
    headers = {**headers, "Cache-Control": "no-cache"}
    return _Parts(parts, headers=headers, media_type="text/event-stream", drop_after=drop_after)


async def _complete(
    sim: GatewaySimulator, rendered: Rendered, headers: dict[str, str], fault: Fault | None
) -> Response:
    latency = sim.latency
    wait = latency.first_token + latency.for_tokens(rendered.completion_tokens)
    if wait > 0:
        await anyio.sleep(wait)
    data = dumps(completion_body(rendered)).encode()
    if fault is not None and fault.kind == "drop_mid_stream":
        half = [(data[: len(data) // 2], 0.0)]
        return _Parts(half, headers=headers, media_type=JSON_TYPE, drop_after=1)
    if fault is not None and fault.kind == "cut_before_done":
        return Response(data[: len(data) // 2], headers=headers, media_type=JSON_TYPE)
    return Response(data, headers=headers, media_type=JSON_TYPE)


def _json(body: Any, headers: dict[str, str], status: int = 200) -> Response:
    return Response(dumps(body).encode(), status_code=status, headers=headers, media_type=JSON_TYPE)


def _error(
    sim: GatewaySimulator, record: RecordedRequest, headers: dict[str, str], refusal: Refusal
) -> Response:
    record.status = refusal.status
    record.error_type = refusal.error_type
    record.error_code = refusal.code
    record.error_message = refusal.message
    answer = {**headers, **sim.account.headers(), **refusal.headers}
    return _json(refusal.body(), answer, refusal.status)
