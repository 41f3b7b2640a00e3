"""Faults on demand and the latency model.

A `Fault` is injected per model (or for every model) and fires on a schedule: the next N
requests (`times`, 1 by default), a share of requests drawn from a seedable RNG (`rate`), or
every request (`always`). Faults are checked after a request passed the strict checks, so a
malformed request is always refused as such and never hidden behind a fault; the first
injected fault that fires wins.

Kinds and what the client sees:
- "rate_limit" (429 `rate_limit_reached_error`), "overloaded" / "busy" (429
  `engine_overloaded_error`), each with `Retry-After` only when `retry_after` is given;
- "quota": 429 `exceeded_current_quota_error` (message mentions quota and balance);
- "server_error": 500/502/503 `server_error`; "unauthorized": 401; "payment_required": 402;
  "error": any other status with the given type and message;
- "slow": waits `delay` seconds, then answers normally;
- "drop_mid_stream": the connection closes abruptly after `after_chunks` SSE events (a
  non-streamed reply: after part of its body) — a transport error for the client;
- "cut_before_done": the stream ends cleanly without `data: [DONE]` (a non-streamed reply:
  a clean but truncated JSON body).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

from kimi_agent.errors import ConfigurationError
from kimi_agent.testing.strict import Refusal

__all__ = ["ERROR_KINDS", "Fault", "FaultBook", "FaultKind", "Latency"]

FaultKind = Literal[
    "rate_limit",
    "overloaded",
    "busy",
    "quota",
    "server_error",
    "unauthorized",
    "payment_required",
    "error",
    "slow",
    "drop_mid_stream",
    "cut_before_done",
]
ERROR_KINDS = frozenset(
    {
        "rate_limit",
        "overloaded",
        "quota",
        "server_error",
        "unauthorized",
        "payment_required",
        "error",
    }
)
_STATUS_KIND: dict[int, FaultKind] = {
    429: "rate_limit",
    401: "unauthorized",
    402: "payment_required",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
_DEFAULT_STATUS = {
    "rate_limit": 429,
    "overloaded": 429,
    "quota": 429,
    "server_error": 500,
    "unauthorized": 401,
    "payment_required": 402,
    "error": 400,
}
_TYPES = {
    "rate_limit": "rate_limit_reached_error",
    "overloaded": "engine_overloaded_error",
    "quota": "exceeded_current_quota_error",
    "server_error": "server_error",
    "unauthorized": "invalid_authentication_error",
    "payment_required": "payment_required_error",
    "error": "invalid_request_error",
}
_SERVER_MESSAGES = {
    500: "The server had an error while processing your request, please try again later",
    502: "Bad gateway: the upstream model service returned an invalid response",
    503: "The service is temporarily unavailable, please try again later",
    504: "Gateway timeout: the upstream model service did not answer in time",
}


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
    fired: int = 0
    active: bool = True

    def cancel(self) -> None:
        self.active = False

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    def refusal(self) -> Refusal:
        """The error answer of an error fault."""
        status = self.status or _DEFAULT_STATUS[self.kind]
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = _seconds(self.retry_after)
        return Refusal(
            status,
            self.error_type or _TYPES[self.kind],
            self.message or self._default_message(status),
            headers,
        )

    def _default_message(self, status: int) -> str:
        wait = _seconds(self.retry_after if self.retry_after is not None else 1)
        if self.kind == "rate_limit":
            return (
                "Your account org-sim<ak-sim> request reached organization max RPM: 60, "
                f"please try again after {wait} seconds"
            )
        if self.kind == "overloaded":
            return "The engine is currently overloaded, please try again later"
        if self.kind == "quota":
            return (
                "Your account org-sim<ak-sim> exceeded its current quota: insufficient "
                "balance, please check your plan and billing details and recharge"
            )
        if self.kind == "server_error":
            return _SERVER_MESSAGES.get(status, _SERVER_MESSAGES[500])
        if self.kind == "unauthorized":
            return "Invalid Authentication"
        if self.kind == "payment_required":
            return "Payment required: the gateway account has insufficient balance"
        return f"Invalid request: simulated error {status}"

    @classmethod
    def build(
        cls,
        model: str | None,
        *,
        status: int | None = None,
        kind: FaultKind | None = None,
        times: int | None = None,
        rate: float | None = None,
        always: bool = False,
        retry_after: float | None = None,
        delay: float | None = None,
        after_chunks: int | None = None,
        message: str | None = None,
        error_type: str | None = None,
    ) -> Fault:
        """Check and complete the arguments of `GatewaySimulator.inject`."""
        if kind is None:
            if status is None:
                raise ConfigurationError("inject() needs a status or a kind")
            kind = _STATUS_KIND.get(status, "error")
        if kind not in get_args(FaultKind):
            raise ConfigurationError(f"unknown fault kind {kind!r}")
        if kind == "busy":
            kind = "overloaded"
        if status is not None and kind not in ERROR_KINDS:
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
            times = 1
        if delay is not None and delay < 0:
            raise ConfigurationError("delay must be >= 0")
        if after_chunks is not None and after_chunks < 0:
            raise ConfigurationError("after_chunks must be >= 0")
        return cls(
            model=model,
            kind=kind,
            status=status,
            times=times,
            rate=rate,
            retry_after=retry_after,
            delay=1.0 if delay is None else delay,
            after_chunks=after_chunks,
            message=message,
            error_type=error_type,
        )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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
        for fault in self.faults:
            if not fault.active or (fault.model is not None and fault.model != model):
                continue
            if fault.rate is not None and self.rng.random() >= fault.rate:
                continue
            fault.fired += 1
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    fault.active = False
            self.faults = [f for f in self.faults if f.active]
            return fault
        return None


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
