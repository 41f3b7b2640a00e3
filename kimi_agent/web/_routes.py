"""The HTTP endpoints (paths relative to where the router is mounted).

Customers (`Authorization: Bearer <customer token>`; the conversation is the token's):

    GET  api/conversation               where it stands (status, run to follow, pending calls)
    GET  api/conversation/messages      the history (customer view)
    POST api/conversation/messages      {"message": "..."} → the run as SSE (or JSON with
                                        `Accept: application/json`)
    GET  api/conversation/events        ?run_id=&after= → a run's SSE from an offset
                                        (`Last-Event-ID` works too): resume after a drop
    POST api/agui                       an AG-UI `RunAgentInput` → the run as AG-UI events

Staff (`Authorization: Bearer <staff key>`):

    GET  api/staff/overview             approvals, hand-off queue and runs, for the console
    GET  api/staff/approvals            pending calls across conversations
    POST api/staff/conversations/{id}/approvals
                                        {"approved": [ids], "rejected": {id: reason}}
                                        → 202 {"run_id"} (or the run as SSE)
    GET  api/staff/handoffs             conversations held by a person
    POST api/staff/conversations/{id}/release     give a held conversation back to the bot
    GET  api/staff/conversations/{id}   state; …/messages history; …/events a run's SSE
"""

from __future__ import annotations

from typing import Any

from ag_ui.core import RunAgentInput
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kimi_agent.web._agui import AguiTranslator, encode, user_text
from kimi_agent.web._errors import WebError
from kimi_agent.web._http import (
    Guard,
    finished_summary,
    json_body,
    json_response,
    message_text,
    parse_after,
    record_frames,
    sse_response,
    wants_json,
)
from kimi_agent.web._runs import LiveRun
from kimi_agent.web._service import ChatService
from kimi_agent.web._tokens import Customer, check_id
from kimi_agent.web._views import Visibility, for_viewer, history_view

__all__ = ["api_routes"]


def api_routes(service: ChatService) -> list[Route]:
    """The API's routes around `service`."""
    guard = Guard(service.options)
    options = service.options

    async def own(request: Request, *, message: bool = False) -> Customer:
        customer = guard.customer(request, message=message)
        entry = await service.owner(customer.session_id)
        if entry is not None and entry.customer_id != customer.customer_id:
            raise WebError(403, "not_your_conversation",
                           "this conversation belongs to another customer")
        return customer

    def run_response(request: Request, run: LiveRun, view: Visibility) -> Any:
        return sse_response(record_frames(run, view, heartbeat=options.heartbeat))

    async def follow(request: Request, session_id: str, view: Visibility) -> Response:
        run_id = request.query_params.get("run_id")
        parse_after(request, "")                     # a bad `after` is a 400 before all else
        run = service.runs.get(run_id) if run_id else service.runs.latest(session_id)
        if run is None or run.session_id != session_id:
            marker = await service.elsewhere(session_id, run_id)
            if marker is not None:
                raise WebError(409, "run_on_other_replica", "这条回复正在另一台服务器上进行，"
                               "结束后可在对话记录中查看。 The run lives on another replica: "
                               "read the conversation's history once it ends.",
                               run_id=marker.run_id,
                               **({"replica": marker.replica} if view.staff else {}))
            raise WebError(404, "run_not_found", "no such run in this conversation is kept "
                           "here: read the conversation's state and history instead")
        after = parse_after(request, run.run_id)
        return sse_response(record_frames(run, view, after=after,
                                          heartbeat=options.heartbeat))

    # ---------------------------------------------------------------- customers

    async def get_state(request: Request) -> Response:
        customer = await own(request)
        state = await service.state(customer.session_id, service.customer_view)
        return json_response({**state, "customer_id": customer.customer_id})

    async def get_messages(request: Request) -> Response:
        customer = await own(request)
        items = await service.store.session(customer.session_id).get_items()
        return json_response({"session_id": customer.session_id,
                              "messages": history_view(items, service.customer_view)})

    async def post_message(request: Request) -> Any:
        customer = await own(request, message=True)
        text = message_text(await json_body(request, options), options)
        run = await service.send(customer, text)
        if wants_json(request):
            return json_response(await finished_summary(run, service.customer_view))
        return run_response(request, run, service.customer_view)

    async def get_events(request: Request) -> Response:
        customer = await own(request)
        return await follow(request, customer.session_id, service.customer_view)

    async def post_agui(request: Request) -> Any:
        customer = await own(request, message=True)
        body = await json_body(request, options)
        try:
            run_input = RunAgentInput.model_validate(body)
        except ValidationError as error:
            raise WebError(422, "bad_agui_input", "the body is not an AG-UI RunAgentInput",
                           problems=[f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                     for e in error.errors()][:20]) from None
        text = user_text(run_input)
        if len(text) > options.max_message_chars:
            raise WebError(413, "message_too_long", f"a message may have at most "
                           f"{options.max_message_chars} characters")
        run = await service.send(customer, text)
        translator = AguiTranslator(customer.session_id, run_input.run_id)
        view = service.customer_view

        async def frames() -> Any:
            async for item in run.follow(heartbeat=options.heartbeat):
                if item is None:
                    yield ": keep-alive\n\n"
                    continue
                visible = for_viewer(item[1], view)
                if visible is not None:
                    for event in translator.feed(visible):
                        yield encode(event)

        return sse_response(frames())

    # ---------------------------------------------------------------- staff

    def session_param(request: Request) -> str:
        return check_id_web(request.path_params["session_id"])

    async def staff_overview(request: Request) -> Response:
        guard.staff(request)
        return json_response({
            "approvals": await service.approvals_queue(),
            "handoffs": await service.handoff_queue(),
            "running": await service.running_runs(),
        })

    async def staff_approvals(request: Request) -> Response:
        guard.staff(request)
        return json_response({"approvals": await service.approvals_queue()})

    async def staff_decide(request: Request) -> Any:
        guard.staff(request)
        session_id = session_param(request)
        body = await json_body(request, options)
        approved, rejected = body.get("approved", []), body.get("rejected", {})
        if (not isinstance(approved, list) or not all(isinstance(a, str) for a in approved)
                or not isinstance(rejected, dict)
                or not all(isinstance(v, str) for v in rejected.values())):
            raise WebError(400, "bad_decisions", 'send {"approved": [call ids], "rejected": '
                           '{call id: reason}}')
        if not approved and not rejected:
            raise WebError(400, "bad_decisions", "decide at least one call")
        run = await service.decide(session_id, approved, rejected)
        if "text/event-stream" in request.headers.get("accept", ""):
            return run_response(request, run, service.staff_view)
        return json_response({"run_id": run.run_id, "session_id": session_id,
                              "status": "running"}, 202)

    async def staff_handoffs(request: Request) -> Response:
        guard.staff(request)
        return json_response({"handoffs": await service.handoff_queue()})

    async def staff_release(request: Request) -> Response:
        guard.staff(request)
        return json_response(await service.release(session_param(request)))

    async def staff_state(request: Request) -> Response:
        guard.staff(request)
        session_id = session_param(request)
        entry = await service.owner(session_id)
        state = await service.state(session_id, service.staff_view)
        return json_response({**state, "customer_id": entry.customer_id if entry else None})

    async def staff_messages(request: Request) -> Response:
        guard.staff(request)
        session_id = session_param(request)
        items = await service.store.session(session_id).get_items()
        return json_response({"session_id": session_id,
                              "messages": history_view(items, service.staff_view)})

    async def staff_events(request: Request) -> Response:
        guard.staff(request)
        return await follow(request, session_param(request), service.staff_view)

    base = "/api/staff/conversations/{session_id}"
    return [
        Route("/api/conversation", get_state, methods=["GET"]),
        Route("/api/conversation/messages", get_messages, methods=["GET"]),
        Route("/api/conversation/messages", post_message, methods=["POST"]),
        Route("/api/conversation/events", get_events, methods=["GET"]),
        Route("/api/agui", post_agui, methods=["POST"]),
        Route("/api/staff/overview", staff_overview, methods=["GET"]),
        Route("/api/staff/approvals", staff_approvals, methods=["GET"]),
        Route("/api/staff/handoffs", staff_handoffs, methods=["GET"]),
        Route(base, staff_state, methods=["GET"]),
        Route(base + "/messages", staff_messages, methods=["GET"]),
        Route(base + "/events", staff_events, methods=["GET"]),
        Route(base + "/approvals", staff_decide, methods=["POST"]),
        Route(base + "/release", staff_release, methods=["POST"]),
    ]


def check_id_web(value: str) -> str:
    """A session id from a path, checked.

    Raises:
        WebError: it is not a usable id (400).
    """
    try:
        return check_id(value, "session id")
    except ValueError as error:
        raise WebError(400, "bad_session_id", str(error)) from None
