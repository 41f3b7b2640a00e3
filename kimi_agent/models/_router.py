"""`ModelRouter`: which model answers a step, and falling over when it cannot.

The primary (kimi-k2-6) answers unless (a) the request no longer fits its window — then the
larger fallback (kimi-k2-5) is preferred over trimming — or (b) it failed recently and is
cooling down. A step falls over only on failures the other model may not share
(`GatewayError.fallback_ok`, docs/wire/gateway.md "What falls over"): busy 429s, 5xx,
time-outs, dropped connections, streams cut early, a context-length refusal, a model that is
not available (not found, retired, unsupported, not in the key's group). What the other model
would meet the same way is raised at once: bad requests, authentication, billing (402), the
key's spend cap, the account's concurrency cap (retried by the client instead), Moonshot's
quota 429. A stream falls over only while nothing of it has reached the caller. When neither
model is available, the error names both.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kimi_agent._logging import EventLogger, resolve
from kimi_agent.errors import ContextLengthError, GatewayError, ModelNotAvailableError
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.wire import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from kimi_agent.gateway._client import GatewayClient

BuildBody = Callable[[ModelProfile], bytes]
OnFallback = Callable[[str, str, str], Awaitable[None]]
OnChunk = Callable[[ChatCompletionChunk], Awaitable[None]]

REASON_CONTEXT = "context_length"
REASON_COOLDOWN = "primary_cooling_down"


class ModelRouter:
    """Routes each model call to the primary or the fallback model.

    The cool-down state belongs to this router (one per `Agent`), so separate agents in one
    process never influence each other.
    """

    def __init__(
        self,
        primary: ModelProfile,
        fallback: ModelProfile | None = None,
        *,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        logger: EventLogger | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.cooldown = cooldown
        self._clock = clock
        self._logger = logger
        self._primary_down_until = 0.0

    @property
    def primary_cooling_down(self) -> bool:
        return self.fallback is not None and self._clock() < self._primary_down_until

    def plan(self, prompt_tokens: int) -> list[tuple[ModelProfile, str | None]]:
        """The models to try for a prompt of this size, in order, each with the reason it is
        used instead of the primary (None for the primary itself)."""
        fallback = self.fallback
        if fallback is None:
            return [(self.primary, None)]
        if not self.primary.fits(prompt_tokens) and (
            fallback.context_window > self.primary.context_window
        ):
            return [(fallback, REASON_CONTEXT)]
        if self.primary_cooling_down:
            return [(fallback, REASON_COOLDOWN), (self.primary, None)]
        return [(self.primary, None), (fallback, "")]

    def _failed(self, profile: ModelProfile, error: GatewayError) -> None:
        if profile is self.primary and not isinstance(error, ContextLengthError):
            self._primary_down_until = self._clock() + self.cooldown

    def _succeeded(self, profile: ModelProfile) -> None:
        if profile is self.primary:
            self._primary_down_until = 0.0

    async def _announce(
        self, on_fallback: OnFallback | None, previous: str | None, profile: ModelProfile,
        reason: str,
    ) -> None:
        source = previous or self.primary.name
        log = resolve(self._logger)
        if log is not None:
            log.warning("fallback", from_model=source, to_model=profile.name, reason=reason)
        if on_fallback is not None:
            await on_fallback(source, profile.name, reason)

    async def complete(
        self, client: GatewayClient, build: BuildBody, prompt_tokens: int,
        on_fallback: OnFallback | None = None,
    ) -> tuple[ChatCompletion, ModelProfile, str | None]:
        """One non-streamed model call; returns the reply, the model that gave it and why
        that model (None when it was the primary as planned).

        Raises:
            GatewayError: the last model's error, when no model answered;
                `ModelNotAvailableError` naming every model tried when none is available.
        """
        async def call(profile: ModelProfile) -> ChatCompletion:
            return await client.complete_body(profile.name, build(profile))

        return await self._route(call, prompt_tokens, on_fallback)

    async def stream(
        self, client: GatewayClient, build: BuildBody, prompt_tokens: int,
        on_chunk: OnChunk, on_fallback: OnFallback | None = None,
    ) -> tuple[ChatCompletion, ModelProfile, str | None]:
        """Like `complete`, streamed: `on_chunk` sees each chunk as it arrives. Falls over only
        while no chunk with content has been handed to `on_chunk`.

        Raises:
            GatewayError: as `complete`; with `partial` holding what arrived when the stream
                failed after content reached the caller.
        """
        async def call(profile: ModelProfile) -> ChatCompletion:
            async with client.stream_body(profile.name, build(profile)) as stream:
                try:
                    async for chunk in stream:
                        await on_chunk(chunk)
                except GatewayError as error:
                    if stream.started:  # the caller saw part of this reply: no other model
                        error.partial = error.partial or stream.partial
                        error.fallback_ok = False
                    raise
                return stream.completion

        return await self._route(call, prompt_tokens, on_fallback)

    async def _route(
        self, call: Callable[[ModelProfile], Awaitable[ChatCompletion]], prompt_tokens: int,
        on_fallback: OnFallback | None,
    ) -> tuple[ChatCompletion, ModelProfile, str | None]:
        plan = self.plan(prompt_tokens)
        reason: str | None = None
        previous: str | None = None
        unavailable: list[ModelNotAvailableError] = []
        for position, (profile, planned) in enumerate(plan):
            if planned:
                reason = planned
            if reason:
                await self._announce(on_fallback, previous, profile, reason)
            try:
                completion = await call(profile)
            except GatewayError as error:
                if isinstance(error, ModelNotAvailableError):
                    unavailable.append(error)
                    if position == len(plan) - 1 and len(unavailable) > 1:
                        raise _none_available(unavailable) from error
                if not error.fallback_ok or position == len(plan) - 1:
                    raise
                self._failed(profile, error)
                previous, reason = profile.name, _describe(error)
                continue
            self._succeeded(profile)
            return completion, profile, reason
        raise AssertionError("unreachable: the plan is never empty")


def _none_available(errors: list[ModelNotAvailableError]) -> ModelNotAvailableError:
    models = [name for error in errors for name in error.models]
    last = errors[-1]
    details = "; ".join(f"{error.model}: {error.message}" for error in errors)
    return ModelNotAvailableError(
        f"none of the models {', '.join(models)} is available to this key ({details})",
        models=models, status=last.status, code=last.code, error_type=last.error_type,
        request_id=last.request_id, trace_id=last.trace_id, request_ids=last.request_ids,
        model=last.model, call=last.call,
    )


def _describe(error: GatewayError) -> str:
    kind = type(error).__name__
    return f"{kind} ({error.status})" if error.status else kind
