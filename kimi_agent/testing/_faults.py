"""Faults on demand and the latency model.

A `Fault` is injected per model (or for every model) and fires on a schedule: the next N
requests (`times`, 1 by default), a share of requests drawn from a seedable RNG (`rate`), or
every request (`always`). Faults are checked after a request passed the strict checks, so a
malformed request is always refused as such and never hidden behind a fault; the first
injected fault that fires wins.

Kinds and what the client sees (the gateway's codes: docs/wire/gateway.md; Moonshot's
types: docs/wire/kimi.md):
- the gateway's own errors, each `{"type", "code", "message"}`: "spend_cap" (429
  `rate_limit_error`, no code, `rate_limit_5h exceeded: 50.00 / 50.00 used; resets at … UTC`
  and `X-RateLimit-Reset`), "concurrency_limit" (429), "insufficient_balance" and
  "quota_exceeded" (402), "permission_denied" and "model_not_in_group" (403),
  "model_not_found" and "unsupported_model" (400; give `status=404` for the other reading);
- Moonshot's errors passed through, `{"type", "message"}`: "rate_limit" (429
  `rate_limit_reached_error`), "overloaded" / "busy" (429 `engine_overloaded_error`),
  "quota" (429 `exceeded_current_quota_error`), "server_error" (5xx), "unauthorized" (401),
  "payment_required" (402), "error" (any status, type, message and code you give);
- in the answer: "stream_error" (a terminal `data: {"error": {...}}` frame after
  `after_chunks` events, then the connection closes — with `data: [DONE]` after it when
  `done=True`; a non-streamed request gets the error as a 502), "no_choices" (every chunk,
  or the body, has `"choices": []`), "think_only" (reasoning, no text, no tool calls),
  "duplicate_ids" / "empty_ids" (the reply's tool-call ids all equal / all ""), "slow"
  (waits `delay` seconds), "drop_mid_stream" (the connection closes abruptly after
  `after_chunks` events — a transport error), "cut_before_done" (the stream ends cleanly
  without `data: [DONE]`; a non-streamed reply: a truncated JSON body).
`retry_after` adds a `Retry-After` header to any error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, get_args

from kimi_agent.errors import ConfigurationError

from ._refusal import Refusal

__all__ = ["ERROR_KINDS", "REPLY_KINDS", "Fault", "FaultBook", "FaultKind", "Latency", "strike"]

FaultKind = Literal[
    "rate_limit",
    "overloaded",
    "busy",
    "quota",
    "server_error",
    "unauthorized",
    "payment_required",
    "error",
    "spend_cap",
    "concurrency_limit",
    "insufficient_balance",
    "quota_exceeded",
    "permission_denied",
    "model_not_in_group",
    "model_not_found",
    "unsupported_model",
    "stream_error",
    "no_choices",
    "think_only",
    "duplicate_ids",
    "empty_ids",
    "slow",
    "drop_mid_stream",
    "cut_before_done",
]
# kind: (status, type, code, message)
_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "rate_limit": (429, "rate_limit_reached_error", None, ""),
    "overloaded": (
        429,
        "engine_overloaded_error",
        None,
        "The engine is currently overloaded, please try again later",
    ),
    "quota": (
        429,
        "exceeded_current_quota_error",
        None,
        "Your account org-sim<ak-sim> exceeded its current quota: insufficient balance, "
        "please check your plan and billing details and recharge",
    ),
    "server_error": (500, "server_error", None, ""),
    "unauthorized": (
        401,
        "invalid_authentication_error",
        "invalid_api_key",
        "Invalid Authentication",
    ),
    "payment_required": (
        402,
        "payment_required_error",
        "insufficient_balance",
        "Payment required: the gateway account has insufficient balance",
    ),
    "error": (400, "invalid_request_error", None, ""),
    "concurrency_limit": (
        429,
        "rate_limit_error",
        "concurrency_limit",
        "concurrency_limit: the account has too many requests in flight, retry shortly",
    ),
    "insufficient_balance": (
        402,
        "insufficient_balance_error",
        "insufficient_balance",
        "insufficient_balance: the organization's wallet is empty, top up to continue",
    ),
    "quota_exceeded": (
        402,
        "quota_exceeded_error",
        "quota_exceeded",
        "quota_exceeded: this API key's lifetime quota is used up",
    ),
    "permission_denied": (
        403,
        "permission_error",
        "permission_denied",
        "permission_denied: requests from this IP address are not allowed for this key",
    ),
    "model_not_in_group": (403, "permission_error", "model_not_in_group", ""),
    "model_not_found": (400, "invalid_request_error", "model_not_found", ""),
    "unsupported_model": (400, "invalid_request_error", "unsupported_model", ""),
    "spend_cap": (429, "rate_limit_error", None, ""),
    "stream_error": (502, "server_error", None, "upstream model failed while generating"),
}
ERROR_KINDS = frozenset(set(_ERRORS) - {"stream_error"})
REPLY_KINDS = frozenset({"think_only", "duplicate_ids", "empty_ids"})
_STATUS_KIND: dict[int, FaultKind] = {
    429: "rate_limit",
    401: "unauthorized",
    402: "payment_required",
    403: "permission_denied",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
_SERVER_MESSAGES = {
    500: "The server had an error while processing your request, please try again later",
    502: "Bad gateway: the upstream model service returned an invalid response",
    503: "The service is temporarily unavailable, please try again later",
    504: "Gateway timeout: the upstream model service did not answer in time",
}
_WINDOWS = {"5h": 5 * 3600, "24h": 24 * 3600, "7d": 7 * 86400}


@dataclass(eq=False)
class Fault:
    """One injected fault; `fired` counts how often it struck, `cancel()` removes it."""

    model: str | None
    kind: FaultKind
    status: int | None = None
    times: int | None = 1
    """Requests left to strike; None means no limit (with `rate`, or always)."""
    rate: float | None = None
    retry_after: float | None = None
    delay: float = 1.0
    after_chunks: int | None = None
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    reset_at: datetime | None = None
    """When a "spend_cap" fault's bucket resets (UTC); default: one hour after it fires."""
    window: str = "5h"
    done: bool = False
    """Whether `data: [DONE]` follows a "stream_error" frame."""
    fired: int = 0
    active: bool = True

    def cancel(self) -> None:
        self.active = False

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    def refusal(self, model: str = "", *, limit_usd: float = 50.0) -> Refusal:
        """The error answer of an error fault (also the frame of a "stream_error")."""
        status, error_type, code, message = _ERRORS[self.kind]
        status = self.status or status
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = _seconds(self.retry_after)
        if self.kind == "spend_cap":
            reset = self.reset_at or datetime.fromtimestamp(
                (int(datetime.now(UTC).timestamp()) // 3600 + 1) * 3600, UTC
            )
            headers["X-RateLimit-Reset"] = str(int(reset.timestamp()))
            headers["X-RateLimit-Remaining"] = "0.00"
            headers["X-RateLimit-Limit"] = f"{limit_usd:.2f}"
            message = (
                f"rate_limit_{self.window} exceeded: {limit_usd:.2f} / {limit_usd:.2f} used; "
                f"resets at {reset.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            )
        elif self.kind in ("model_not_found", "unsupported_model"):
            message = f"{self.kind}: the model {model} is not in the catalog or was retired"
        elif self.kind == "model_not_in_group":
            message = f"model_not_in_group: this key's routing group cannot reach {model}"
        elif self.kind == "rate_limit":
            wait = _seconds(self.retry_after if self.retry_after is not None else 1)
            message = (
                "Your account org-sim<ak-sim> request reached organization max RPM: 60, "
                f"please try again after {wait} seconds"
            )
        elif self.kind == "server_error":
            message = _SERVER_MESSAGES.get(status, _SERVER_MESSAGES[500])
        elif self.kind == "error":
            message = f"Invalid request: simulated error {status}"
        return Refusal(
            status,
            self.error_type or error_type,
            self.message or message,
            headers,
            code=self.code if self.code is not None else code,
        )

    @classmethod
    def build(cls, model: str | None, **options: Any) -> Fault:
        """Check and complete the arguments of `GatewaySimulator.inject`.

        Raises:
            ConfigurationError: an unknown kind, or options that do not fit together.
        """
        kind, status = options.pop("kind", None), options.get("status")
        times, rate, always = options.get("times"), options.get("rate"), options.pop("always")
        if kind is None:
            if status is None:
                raise ConfigurationError("inject() needs a status or a kind")
            kind = _STATUS_KIND.get(status, "error")
        if kind not in get_args(FaultKind):
            raise ConfigurationError(f"unknown fault kind {kind!r}")
        if kind == "busy":
            kind = "overloaded"
        if status is not None and kind not in ERROR_KINDS and kind != "stream_error":
            raise ConfigurationError(f"a {kind!r} fault takes no status")
        if status is not None and not 400 <= status <= 599:
            raise ConfigurationError(f"a fault status must be 4xx or 5xx, got {status}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ConfigurationError(f"rate must be between 0 and 1, got {rate}")
        if times is not None and times < 1:
            raise ConfigurationError(f"times must be at least 1, got {times}")
        if always and (times is not None or rate is not None):
            raise ConfigurationError("always=True excludes times and rate")
        if times is None and rate is None and not always:
            options["times"] = 1
        if (options.get("delay") or 0) < 0:
            raise ConfigurationError("delay must be >= 0")
        if (options.get("after_chunks") or 0) < 0:
            raise ConfigurationError("after_chunks must be >= 0")
        if options.get("window", "5h") not in _WINDOWS:
            raise ConfigurationError(f"window must be one of {', '.join(_WINDOWS)}")
        reset_at = options.get("reset_at")
        if reset_at is not None and reset_at.tzinfo is None:
            raise ConfigurationError("reset_at must be an aware datetime (UTC)")
        if options.get("delay") is None:
            options["delay"] = 1.0
        options["window"] = options.get("window") or "5h"
        return cls(model=model, kind=kind, **options)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class _Strikable(Protocol):
    """What `strike` needs of a fault: the simulator's `Fault` and a proxy's alike."""

    times: int | None
    rate: float | None
    fired: int
    active: bool


F = TypeVar("F", bound=_Strikable)


def strike(faults: list[F], rng: random.Random,
           applies: Callable[[F], bool] = lambda fault: True) -> tuple[F | None, list[F]]:
    """The first active fault that `applies` and passes its `rate` draw, counted (`fired`,
    `times`, deactivated once spent), and the faults still active afterwards."""
    for fault in faults:
        if not fault.active or not applies(fault):
            continue
        if fault.rate is not None and rng.random() >= fault.rate:
            continue
        fault.fired += 1
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                fault.active = False
        return fault, [f for f in faults if f.active]
    return None, faults


class FaultBook:
    """The injected faults, checked in injection order, with the RNG for `rate` faults."""

    def __init__(self, seed: int | None = None) -> None:
        self.faults: list[Fault] = []
        self.rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def pick(self, model: str) -> Fault | None:
        """The fault that strikes this request to `model`, if any (and count it)."""
        fault, self.faults = strike(self.faults, self.rng,
                                    lambda f: f.model is None or f.model == model)
        return fault


@dataclass(frozen=True, slots=True)
class Latency:
    """Time to first token and generation speed; 0 means no delay (the default).

    Streams wait `first_token` before their first event and `tokens / tokens_per_second`
    before each later one; a non-streamed reply waits the sum before it is sent.
    """

    first_token: float = 0.0
    tokens_per_second: float = 0.0

    def for_tokens(self, tokens: int) -> float:
        if self.tokens_per_second <= 0:
            return 0.0
        return tokens / self.tokens_per_second
