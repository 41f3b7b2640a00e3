"""Usage accounting across the model calls of a run, and the limits a run may not pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: `import kimi_agent.tooling` need not load the wire types
    from kimi_agent.wire import Usage


@dataclass(slots=True)
class RunUsage:
    """Tokens and requests summed over a run (or over several runs with `+=`)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    """USD, from the prices set on the model profiles (0 when none are set)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage | None) -> None:
        """Count one model call and the usage it reported (if any)."""
        self.requests += 1
        if usage is None:
            return
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_tokens += usage.cached_tokens
        self.reasoning_tokens += usage.reasoning_tokens

    def __iadd__(self, other: RunUsage) -> RunUsage:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cost += other.cost
        return self


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """Upper bounds for one run; `None` means no bound."""

    request_limit: int | None = 50
    total_tokens_limit: int | None = None
    prompt_tokens_limit: int | None = None
    completion_tokens_limit: int | None = None

    def exceeded(self, usage: RunUsage) -> str | None:
        """A sentence naming the first limit `usage` has passed, or None."""
        checks = (
            ("requests", usage.requests, self.request_limit),
            ("total tokens", usage.total_tokens, self.total_tokens_limit),
            ("prompt tokens", usage.prompt_tokens, self.prompt_tokens_limit),
            ("completion tokens", usage.completion_tokens, self.completion_tokens_limit),
        )
        for name, used, limit in checks:
            if limit is not None and used > limit:
                return f"the run used {used} {name}, over the limit of {limit}"
        return None

    def would_exceed_requests(self, usage: RunUsage) -> bool:
        return self.request_limit is not None and usage.requests >= self.request_limit
