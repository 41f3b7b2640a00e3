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

See docs/guides/web.md.
"""

from __future__ import annotations

from kimi_agent.web._app import create_app, create_router, web_routes
from kimi_agent.web._book import ConversationBook, ConversationEntry, ConversationStatus
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

__all__ = [
    "DEFAULT_TOOL_LABELS",
    "GENERIC_TOOL_LABEL",
    "ChatService",
    "ConversationBook",
    "ConversationEntry",
    "ConversationStatus",
    "Customer",
    "RateLimit",
    "SessionStore",
    "TokenError",
    "WebError",
    "WebOptions",
    "create_app",
    "create_router",
    "mint_customer_token",
    "verify_customer_token",
    "web_routes",
]
