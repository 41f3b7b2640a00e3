"""The ASGI app and the router: the API, the widget, the staff console, their files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from kimi_agent import Agent
from kimi_agent.errors import SessionStoreUnavailableError
from kimi_agent.web._book import Book
from kimi_agent.web._errors import WebError
from kimi_agent.web._http import (
    http_error,
    json_response,
    server_error,
    store_error,
    web_error,
)
from kimi_agent.web._options import WebOptions
from kimi_agent.web._routes import api_routes
from kimi_agent.web._service import ChatService, DepsFactory, SessionStore

__all__ = ["create_app", "create_router", "web_routes"]

_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; base-uri 'none'; form-action 'none'")


def _page(name: str, frame_ancestors: str | None) -> Any:
    html = resources.files("kimi_agent.web").joinpath("_static", name).read_text("utf-8")

    async def page(request: Request) -> Response:
        csp = _PAGE_CSP + (f"; frame-ancestors {frame_ancestors}" if frame_ancestors else "")
        headers = {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
        if frame_ancestors == "'none'":
            headers["X-Frame-Options"] = "DENY"
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)
    return page


def web_routes(service: ChatService) -> list[BaseRoute]:
    """Every route of the web layer around `service`: mount them where you like."""
    options = service.options
    ancestors = (" ".join(options.frame_ancestors)
                 if options.frame_ancestors is not None else None)

    async def config(request: Request) -> Response:
        return json_response({"title": options.title, "greeting": options.greeting,
                              "staff": options.staff_key is not None})

    async def healthz(request: Request) -> Response:
        return json_response({"ok": True, "running": service.running})

    return [
        *api_routes(service),
        Route("/api/config", config, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/widget", _page("widget.html", ancestors), methods=["GET"]),
        Route("/staff", _page("staff.html", "'none'"), methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("kimi_agent.web", "_static")]),
              name="static"),
    ]


_HANDLERS: dict[Any, Any] = {WebError: web_error, HTTPException: http_error,
                             SessionStoreUnavailableError: store_error,
                             Exception: server_error}


def create_router(service: ChatService) -> Router:
    """A Starlette `Router` of the web layer, to mount in a host app under any prefix:

        service = ChatService(agent, store, options, deps=...)
        app = Starlette(routes=[Mount("/support", app=create_router(service))],
                        lifespan=lambda app: service)   # the host runs the service

    Errors answer as JSON. The router does not start the service: the host's lifespan
    does (`async with service:`).
    """
    return _JsonErrors(web_routes(service))


class _JsonErrors(Router):
    """A router whose errors (ours, Starlette's 404/405, anything unexpected) are JSON."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        super().__init__(routes=routes)
        self._app = Starlette(routes=routes, exception_handlers=_HANDLERS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def create_app(agent: Agent[Any, Any], store: SessionStore, options: WebOptions, *,
               deps: DepsFactory | None = None, book: Book | None = None,
               service: ChatService | None = None) -> Starlette:
    """The whole web layer as an ASGI app (Starlette): API, widget, staff console.

    `store` is anything with `.session(session_id)` giving a `kimi_agent.Session`
    (`SQLiteStore`, …); `deps(customer)` gives the deps of a customer's runs; `book`
    keeps where conversations stand (default: in memory). The app's lifespan starts the
    runs' service and, on shutdown, lets runs under way finish (`shutdown_grace`).

    Raises:
        ConfigurationError: from `WebOptions` (checked when they are made).
    """
    service = service or ChatService(agent, store, options, deps=deps, book=book)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with service:
            yield

    middleware = []
    if options.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type",
                                                          "last-event-id"],
            max_age=600))
    app = Starlette(routes=web_routes(service), middleware=middleware,
                    exception_handlers=_HANDLERS, lifespan=lifespan)
    app.state.chat_service = service
    return app
