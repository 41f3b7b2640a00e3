"""`WebOptions`: how the web layer treats customers, staff and browsers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kimi_agent.errors import ConfigurationError
from kimi_agent.web._limits import RateLimit
from kimi_agent.web._tokens import MIN_SECRET_BYTES

__all__ = ["WebOptions"]


@dataclass(frozen=True)
class WebOptions:
    """Settings of a `ChatService` / `create_app`.

    - `secret`: the HMAC key of customer tokens (shared with the host site that mints them
      with `mint_customer_token`; at least 16 bytes).
    - `staff_key`: the bearer credential of the staff endpoints and console (None turns
      them off: they answer 403). Keep it apart from `secret`.
    - `show_reasoning`, `show_tool_details`: let customers see the model's reasoning, tool
      arguments and results (off by default: staff always see them).
    - `tool_labels`: tool name → the progress line customers see ("正在查询订单…"),
      merged over the defaults; other tools show "正在处理…".
    - `max_body_bytes`, `max_message_chars`: request limits (413 beyond them).
    - `message_limit`: messages a customer may send (429 beyond it); `request_limit`: all
      of a customer's requests, reads included. None disables either.
    - `cors_origins`: origins allowed to call the API from a browser (a host page calling
      the API directly; the iframe widget needs none). `frame_ancestors`: who may embed the
      widget in a frame (the `Content-Security-Policy` of the widget page; None: anyone).
    - `shutdown_grace`: how long shutting down waits for runs under way to finish.
    - `heartbeat`: seconds between SSE keep-alive comments.
    - `run_lease`: how long a run's marker in the conversation book lasts unless renewed
      (it is renewed every third of it while the run lives): how long a conversation of a
      replica that was killed mid-run still shows as running elsewhere.
    - `title`, `greeting`: what the widget shows at the top and as its first message.

    Raises:
        ConfigurationError: the secret is too short, or it equals the staff key.
    """

    secret: str | bytes
    staff_key: str | None = None
    show_reasoning: bool = False
    show_tool_details: bool = False
    tool_labels: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = 16_384
    max_message_chars: int = 2000
    message_limit: RateLimit | None = field(default_factory=lambda: RateLimit(20, 60.0))
    request_limit: RateLimit | None = field(default_factory=lambda: RateLimit(600, 60.0))
    cors_origins: Sequence[str] = ()
    frame_ancestors: Sequence[str] | None = None
    shutdown_grace: float = 30.0
    heartbeat: float = 15.0
    run_lease: float = 15.0
    title: str = "在线客服"
    greeting: str = "您好！我是智能客服，请问有什么可以帮您？"

    def __post_init__(self) -> None:
        secret = self.secret.encode() if isinstance(self.secret, str) else self.secret
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"WebOptions.secret must have at least "
                                     f"{MIN_SECRET_BYTES} bytes; use secrets.token_urlsafe(32)")
        if self.staff_key is not None:
            if len(self.staff_key) < MIN_SECRET_BYTES:
                raise ConfigurationError(f"WebOptions.staff_key must have at least "
                                         f"{MIN_SECRET_BYTES} characters")
            if self.staff_key.encode() == secret:
                raise ConfigurationError("the staff key must differ from the token secret")
        if not self.run_lease >= 0.5:
            raise ConfigurationError(f"WebOptions.run_lease must be at least 0.5 s, not "
                                     f"{self.run_lease!r}")
        if self.max_body_bytes < 256 or self.max_message_chars < 1:
            raise ConfigurationError("max_body_bytes must be at least 256 and "
                                     "max_message_chars at least 1")
