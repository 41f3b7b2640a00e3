"""The key's spend bucket and quotas, reported on every answer as the gateway does.

docs/wire/gateway.md: the tightest spend bucket of the key is reported on every response, success or
failure, before the first stream event — `X-RateLimit-Limit` and `X-RateLimit-Remaining`
(USD), `X-RateLimit-Reset` (Unix seconds) — with `X-Quota-Remaining-Credits` and
`X-Org-Quota-Remaining-Credits` (1 USD = 1,000,000 credits). Failures never bill.

The model here: one bucket (a 5-hour window by default) that starts with the first billed
request and empties when the window has passed; a successful request costs its total tokens
at `usd_per_million_tokens` (a made-up flat rate: the gateway's real prices are per model
and not in the headers). The bucket being full does not refuse anything by itself; inject a
"spend_cap" fault for that, so a test decides when the cap strikes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Account"]

CREDITS_PER_USD = 1_000_000


@dataclass
class Account:
    """Spend so far and the limits reported in the headers."""

    limit_usd: float = 50.0
    window_seconds: int = 5 * 3600
    quota_credits: int = 100 * CREDITS_PER_USD
    org_credits: int = 1_000 * CREDITS_PER_USD
    usd_per_million_tokens: float = 1.0
    spent_usd: float = 0.0
    window_start: float | None = field(default=None)
    billed_credits: int = 0

    def _roll(self, now: float) -> None:
        if self.window_start is not None and now >= self.window_start + self.window_seconds:
            self.window_start, self.spent_usd = None, 0.0

    def charge(self, total_tokens: int, now: float | None = None) -> None:
        """Bill one successful request of `total_tokens`."""
        now = time.time() if now is None else now
        self._roll(now)
        if self.window_start is None:
            self.window_start = now
        cost = total_tokens * self.usd_per_million_tokens / 1_000_000
        self.spent_usd += cost
        self.billed_credits += round(cost * CREDITS_PER_USD)

    def headers(self, now: float | None = None) -> dict[str, str]:
        """The gateway's accounting headers for an answer sent at `now`."""
        now = time.time() if now is None else now
        self._roll(now)
        start = self.window_start if self.window_start is not None else now
        remaining = max(0.0, self.limit_usd - self.spent_usd)
        return {
            "X-RateLimit-Limit": f"{self.limit_usd:.2f}",
            "X-RateLimit-Remaining": f"{remaining:.2f}",
            "X-RateLimit-Reset": str(int(start + self.window_seconds)),
            "X-Quota-Remaining-Credits": str(max(0, self.quota_credits - self.billed_credits)),
            "X-Org-Quota-Remaining-Credits": str(max(0, self.org_credits - self.billed_credits)),
        }

    def reset(self) -> None:
        self.spent_usd, self.window_start, self.billed_credits = 0.0, None, 0
