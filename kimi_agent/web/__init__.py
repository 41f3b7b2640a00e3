"""`kimi_agent.web`: the agent on the web — an ASGI app (Starlette) that streams runs.

Install with `pip install 'kimi-agent[web]'`. What it gives:

- `create_app(agent, store, WebOptions(secret=..., staff_key=...), deps=...)`: the API
  (runs as Server-Sent Events, in our event format or the AG-UI protocol), the Chinese chat
  widget (`/widget`) and the staff console (`/staff`); `create_router(service)` to mount
  the same under a prefix of your own app.
- `mint_customer_token(secret, customer_id)`: the signed token the host site hands to the
  widget; the conversation a request reaches comes from it, never from the body.
- `ChatService`: the runs behind the endpoints (one per conversation at a time, surviving
  dropped connections, hand-offs holding a conversation for a person).
- The conversation book (`Book`): where each conversation stands and which runs are under
  way. `ConversationBook` (SQLite / memory) for one host; `PostgresBook` and `RedisBook`
  for replicas on several hosts; `open_book(url)` opens the one beside a store URL.
- `open_backend(url, concurrency=N)`: the store, the book and the gateway cap (shared by the
  replicas through PostgreSQL/Redis) from one store URL, as `kimi-agent serve --store` does.

Names are imported lazily (the `serve` command's parser costs nothing); the web extra is
needed once one is used. See docs/guides/web.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "create_app": "kimi_agent.web._app",
    "create_router": "kimi_agent.web._app",
    "web_routes": "kimi_agent.web._app",
    "Book": "kimi_agent.web._book",
    "ConversationBook": "kimi_agent.web._book_sqlite",
    "ConversationEntry": "kimi_agent.web._book",
    "ConversationStatus": "kimi_agent.web._book",
    "RunMarker": "kimi_agent.web._book",
    "open_book": "kimi_agent.web._book",
    "PostgresBook": "kimi_agent.web._book_pg",
    "RedisBook": "kimi_agent.web._book_redis",
    "WebBackend": "kimi_agent.web._backend",
    "open_backend": "kimi_agent.web._backend",
    "WebError": "kimi_agent.web._errors",
    "RateLimit": "kimi_agent.web._limits",
    "WebOptions": "kimi_agent.web._options",
    "ChatService": "kimi_agent.web._service",
    "SessionStore": "kimi_agent.web._service",
    "Customer": "kimi_agent.web._tokens",
    "TokenError": "kimi_agent.web._tokens",
    "mint_customer_token": "kimi_agent.web._tokens",
    "verify_customer_token": "kimi_agent.web._tokens",
    "DEFAULT_TOOL_LABELS": "kimi_agent.web._views",
    "GENERIC_TOOL_LABEL": "kimi_agent.web._views",
}

__all__ = [
    "DEFAULT_TOOL_LABELS",
    "GENERIC_TOOL_LABEL",
    "Book",
    "ChatService",
    "ConversationBook",
    "ConversationEntry",
    "ConversationStatus",
    "Customer",
    "PostgresBook",
    "RateLimit",
    "RedisBook",
    "RunMarker",
    "SessionStore",
    "TokenError",
    "WebBackend",
    "WebError",
    "WebOptions",
    "create_app",
    "create_router",
    "mint_customer_token",
    "open_backend",
    "open_book",
    "verify_customer_token",
    "web_routes",
]

if TYPE_CHECKING:
    from kimi_agent.web._app import create_app, create_router, web_routes
    from kimi_agent.web._backend import WebBackend, open_backend
    from kimi_agent.web._book import (
        Book,
        ConversationEntry,
        ConversationStatus,
        RunMarker,
        open_book,
    )
    from kimi_agent.web._book_pg import PostgresBook
    from kimi_agent.web._book_redis import RedisBook
    from kimi_agent.web._book_sqlite import ConversationBook
    from kimi_agent.web._errors import WebError
    from kimi_agent.web._limits import RateLimit
    from kimi_agent.web._options import WebOptions
    from kimi_agent.web._service import ChatService, SessionStore
    from kimi_agent.web._tokens import (
        Customer,
        TokenError,
        mint_customer_token,
        verify_customer_token,
    )
    from kimi_agent.web._views import DEFAULT_TOOL_LABELS, GENERIC_TOOL_LABEL


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent.web' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
