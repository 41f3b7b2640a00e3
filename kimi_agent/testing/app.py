"""The ASGI app of the simulator (Starlette): `POST /v1/chat/completions`, `GET /v1/models`.

One request goes: record → authenticate → parse → strict checks → fault → answer (script or
responder) → render → send, with latency. Every answer, errors included, carries Moonshot's
`Msh-Request-Id` and `X-Msh-Trace-Id` headers, and every JSON body keeps CJK text as is
(`ensure_ascii=False`). Unknown paths and wrong methods get Moonshot-style JSON errors too, and
are recorded like everything else.

Dropping a connection: the app raises `DroppedConnection` after part of the answer went out.
Over a real socket uvicorn then closes it abruptly (the client sees an incomplete body); in
process, through `httpx.ASGITransport`, the exception reaches the client directly — it is an
`httpx.RemoteProtocolError`, i.e. the transport error a client would see.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kimi_agent.wire import dumps

from .faults import Fault
from .records import RecordedRequest, redact_headers
from .render import Rendered, completion_body, make_usage, stream_events
from .replies import SimRequest
from .script import NoScriptMatch
from .strict import Refusal, check_auth, check_request, parse_body

if TYPE_CHECKING:
    from .simulator import GatewaySimulator

__all__ = ["DroppedConnection", "build_app"]

logger = logging.getLogger("kimi_agent.testing")

JSON_TYPE = "application/json; charset=utf-8"
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Every route takes every method, so a wrong one is recorded and answered in JSON."""


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


def build_app(sim: GatewaySimulator) -> Starlette:
    """The Starlette app serving `sim`."""

    async def chat(request: Request) -> Response:
        record, headers = _start(sim, request)
        if request.method != "POST":
            return _error(
                record,
                headers,
                Refusal(405, "invalid_request_error", f"Method {request.method} not allowed"),
            )
        return await _chat(sim, request, record, headers)

    async def models(request: Request) -> Response:
        record, headers = _start(sim, request)
        try:
            if request.method != "GET":
                raise Refusal(405, "invalid_request_error", f"Method {request.method} not allowed")
            check_auth(request.headers.get("authorization"), sim.api_key)
        except Refusal as refusal:
            return _error(record, headers, refusal)
        data = [
            {
                "id": profile.name,
                "object": "model",
                "created": 0,
                "owned_by": "moonshot",
                "context_length": profile.context_window,
                "max_output_tokens": profile.max_output,
            }
            for profile in sim.profiles.values()
        ]
        record.status = 200
        return _json({"object": "list", "data": data}, headers)

    async def unknown(request: Request) -> Response:
        record, headers = _start(sim, request)
        return _error(
            record,
            headers,
            Refusal(
                404, "resource_not_found_error", f"Not found: {request.method} {request.url.path}"
            ),
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=_ALL_METHODS),
            Route("/v1/models", models, methods=_ALL_METHODS),
            Route("/{path:path}", unknown, methods=_ALL_METHODS),
        ]
    )


def _start(sim: GatewaySimulator, request: Request) -> tuple[RecordedRequest, dict[str, str]]:
    request_id = uuid.uuid4().hex
    record = RecordedRequest(
        index=len(sim.requests),
        method=request.method,
        path=request.url.path,
        headers=redact_headers(dict(request.headers), sim.api_key),
        request_id=request_id,
    )
    sim.requests.append(record)
    headers = {"Msh-Request-Id": request_id, "X-Msh-Trace-Id": uuid.uuid4().hex}
    return record, headers


async def _chat(
    sim: GatewaySimulator, request: Request, record: RecordedRequest, headers: dict[str, str]
) -> Response:
    raw = await request.body()
    record.raw_body = raw
    try:
        check_auth(request.headers.get("authorization"), sim.api_key)
        body = parse_body(raw)
        record.body = body
        record.model = body.get("model") if isinstance(body.get("model"), str) else None
        record.stream = body.get("stream") is True
        checked = check_request(body, sim.profiles)
    except Refusal as refusal:
        return _error(record, headers, refusal)

    fault = sim.faults.pick(checked.model)
    if fault is not None:
        record.fault = fault.kind
        if fault.is_error:
            return _error(record, headers, fault.refusal())
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
        reply = await sim.answer(view)
        calls = reply.calls()
    except NoScriptMatch as exc:
        logger.warning("%s", exc)
        sim.errors.append(exc)
        return _error(record, headers, Refusal(500, "simulator_error", str(exc)))
    except Exception as exc:
        logger.exception("simulator: the responder raised")
        sim.errors.append(exc)
        message = f"simulator: the responder raised {type(exc).__name__}: {exc}"
        return _error(record, headers, Refusal(500, "simulator_error", message))

    ids = sim.ids.make(calls, checked.messages) if calls else []
    cached = sim.cache.cached_tokens(checked.model, checked.tools, checked.messages)
    usage = make_usage(checked.prompt_tokens, cached, reply, calls)
    rendered = Rendered.make(checked.model, reply, ids, usage)
    record.status = 200
    record.reply = reply
    record.tool_call_ids = ids
    record.cached_tokens = cached
    if checked.stream:
        return _stream(sim, rendered, checked.include_usage, headers, fault)
    return await _complete(sim, rendered, headers, fault)


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


def _error(record: RecordedRequest, headers: dict[str, str], refusal: Refusal) -> Response:
    record.status = refusal.status
    record.error_type = refusal.error_type
    record.error_message = refusal.message
    return _json(refusal.body(), {**headers, **refusal.headers}, refusal.status)
