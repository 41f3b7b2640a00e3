"""Structured logs: one event per model call and per tool call, free when disabled.

kimi-agent never configures structlog globally behind the user's back. Logging is off until
the application either passes a structlog logger (`logger=` on `Agent` / `GatewayClient`) or
calls `configure_logging()`. Call sites check `if log is not None` before building an event,
so a disabled log costs one comparison. Every event passes through `redact`, which masks API
keys and bearer tokens wherever they appear.
"""

from __future__ import annotations

import re
import sys
from collections.abc import MutableMapping
from typing import Any, Protocol, TextIO

import structlog

_SECRET_KEYS = frozenset({"api_key", "authorization", "password", "secret", "token"})
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_KEY_RE = re.compile(r"\b(sk-|sim-key)[A-Za-z0-9._-]*")


class EventLogger(Protocol):
    """The part of a structlog bound logger kimi-agent uses."""

    def debug(self, event: str, **kw: Any) -> Any: ...
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


_default: EventLogger | None = None


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor that masks secrets in keys and string values."""
    for key, value in list(event.items()):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
        elif isinstance(value, str) and ("earer" in value or "sk-" in value or "sim-key" in value):
            event[key] = _KEY_RE.sub(r"\1***", _BEARER_RE.sub(r"\1***", value))
    return event


def configure_logging(
    level: str = "INFO", *, json: bool = False, stream: TextIO | None = None
) -> EventLogger:
    """Turn kimi-agent's logs on, printing to `stream` (stderr by default); returns the logger.

    This sets the default logger of kimi-agent only; structlog's global configuration and the
    application's own loggers are left alone.
    """
    global _default
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logger: EventLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level.upper()),
        logger_name="kimi_agent",
    )
    _default = logger
    return logger


def disable_logging() -> None:
    global _default
    _default = None


def resolve(logger: EventLogger | None) -> EventLogger | None:
    """The logger to use: the one given, else the one `configure_logging` installed, else None."""
    return logger if logger is not None else _default
