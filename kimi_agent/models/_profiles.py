"""Model profiles: what each model accepts, so requests are shaped before they are sent.

The two built-in profiles carry the figures of the gateway's model pages
(docs/wire/gateway.md). A `ModelProfiles` registry maps names to profiles; `DEFAULT_PROFILES`
holds the built-ins and users may add their own, or build a private registry when they want no
shared state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from kimi_agent.errors import ConfigurationError, ContextLengthError
from kimi_agent.wire import Usage

StructuredOutputMode = Literal["json_schema", "json_object"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What a model costs, in USD per million tokens: `input` (uncached prompt tokens),
    `cached_input` (prompt tokens served from the prompt cache; `input` when None) and
    `output` (completion tokens, reasoning included). kimi-agent ships no prices: the gateway
    publishes a live rate per model, so set the ones of your account on the profile."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage | None) -> float:
        """The cost of one model call's usage (0 without usage)."""
        if usage is None:
            return 0.0
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((usage.prompt_tokens - cached) * self.input + cached * cached_rate
                + usage.completion_tokens * self.output) / 1_000_000


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """The limits and capabilities of one model.

    `context_window` bounds prompt + `max_tokens`; `max_output` caps `max_tokens` (it covers
    reasoning and answer). `parallel_tool_calls` says whether the calls of one reply may run
    at the same time. `structured_output` is how a schema is asked for.
    """

    name: str
    context_window: int
    max_output: int
    parallel_tool_calls: bool = True
    structured_output: StructuredOutputMode = "json_schema"
    min_output: int = 1024
    """The smallest output budget worth sending a request with."""
    price: ModelPrice | None = None
    """The model's price, for `RunUsage.cost` (none built in)."""

    def __post_init__(self) -> None:
        if self.context_window <= 0 or self.max_output <= 0:
            raise ConfigurationError(f"model {self.name!r}: window and max output must be > 0")
        if self.max_output > self.context_window:
            raise ConfigurationError(f"model {self.name!r}: max output exceeds the window")

    def margin(self, prompt_tokens: int) -> int:
        """Head-room for the error of our token estimate (see `kimi_agent.context`)."""
        return 256 + prompt_tokens // 20

    def output_budget(self, prompt_tokens: int) -> int:
        """The largest `max_tokens` a prompt of this size leaves room for."""
        room = self.context_window - prompt_tokens - self.margin(prompt_tokens)
        return min(self.max_output, room)

    def fits(self, prompt_tokens: int) -> bool:
        return self.output_budget(prompt_tokens) >= min(self.min_output, self.max_output)

    def clamp_max_tokens(self, prompt_tokens: int, requested: int | None = None) -> int:
        """`max_tokens` for a request: `min(requested or cap, window - prompt - margin)`.

        Raises `ContextLengthError` before anything is sent when the prompt leaves no
        useful room for an answer.
        """
        budget = self.output_budget(prompt_tokens)
        if not self.fits(prompt_tokens):
            raise ContextLengthError(
                f"the prompt (about {prompt_tokens} tokens) leaves no room for an answer in "
                f"{self.name}'s window of {self.context_window} tokens",
                model=self.name,
            )
        if requested is not None:
            budget = min(budget, requested)
        return max(1, budget)


KIMI_K2_6 = ModelProfile(
    name="kimi-k2-6",
    context_window=128 * 1024,
    max_output=16384,
    parallel_tool_calls=True,
    structured_output="json_schema",
)
KIMI_K2_5 = ModelProfile(
    name="kimi-k2-5",
    context_window=256 * 1024,
    max_output=8192,
    parallel_tool_calls=False,
    structured_output="json_object",
)


class ModelProfiles:
    """A name → profile registry."""

    def __init__(self, profiles: tuple[ModelProfile, ...] = (KIMI_K2_6, KIMI_K2_5)) -> None:
        self._profiles = {profile.name: profile for profile in profiles}

    def register(self, profile: ModelProfile, *, replace: bool = False) -> ModelProfile:
        if profile.name in self._profiles and not replace:
            raise ConfigurationError(f"a model profile named {profile.name!r} already exists")
        self._profiles[profile.name] = profile
        return profile

    def get(self, model: str | ModelProfile) -> ModelProfile:
        if isinstance(model, ModelProfile):
            return model
        try:
            return self._profiles[model]
        except KeyError:
            known = ", ".join(sorted(self._profiles))
            raise ConfigurationError(
                f"unknown model {model!r}; known models: {known} "
                "(register a ModelProfile for another model)"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def __iter__(self) -> Iterator[ModelProfile]:
        return iter(self._profiles.values())


DEFAULT_PROFILES = ModelProfiles()


def get_profile(model: str | ModelProfile) -> ModelProfile:
    return DEFAULT_PROFILES.get(model)


def register_model(profile: ModelProfile, *, replace: bool = False) -> ModelProfile:
    return DEFAULT_PROFILES.register(profile, replace=replace)
