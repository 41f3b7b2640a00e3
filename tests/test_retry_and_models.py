"""Backoff arithmetic, Retry-After parsing and model-profile clamping (pure parts)."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kimi_agent.errors import (
    BadRequestError,
    ConfigurationError,
    ContextLengthError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from kimi_agent.gateway._retry import RetryPolicy, parse_retry_after
from kimi_agent.models._profiles import (
    KIMI_K2_5,
    KIMI_K2_6,
    ModelProfile,
    ModelProfiles,
    get_profile,
)


@given(st.integers(min_value=0, max_value=30), st.floats(min_value=0, max_value=1))
def test_full_jitter_backoff_stays_within_the_exponential_cap(index: int, r: float) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, random=lambda: r)
    delay = policy.backoff(index)
    assert 0 <= delay <= min(8.0, 0.5 * 2**index)


def test_only_retryable_errors_get_a_delay() -> None:
    policy = RetryPolicy(max_retries=3, random=lambda: 1.0)
    assert policy.delay_for(ServerError("x"), 0) == 1.0, "the gateway's rule: from 1 s"
    assert policy.delay_for(RateLimitError("x", retry_after=2.0), 1) == 2.0
    assert policy.delay_for(QuotaExceededError("x"), 0) is None
    assert policy.delay_for(BadRequestError("x"), 0) is None
    assert policy.delay_for(ServerError("x"), 3) is None, "attempts are bounded"


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000) == 10.0
    assert parse_retry_after({"retry-after": date}, now=2_000_000) == 0.0


def test_builtin_profiles_follow_design() -> None:
    assert (KIMI_K2_6.context_window, KIMI_K2_6.max_output) == (131072, 16384)
    assert (KIMI_K2_5.context_window, KIMI_K2_5.max_output) == (262144, 8192)
    assert KIMI_K2_6.parallel_tool_calls and not KIMI_K2_5.parallel_tool_calls
    assert KIMI_K2_5.structured_output == "json_object"
    assert get_profile("kimi-k2-6") is KIMI_K2_6


def test_clamp_max_tokens() -> None:
    assert KIMI_K2_6.clamp_max_tokens(1000) == 16384
    assert KIMI_K2_6.clamp_max_tokens(1000, requested=500) == 500
    near_full = 120_000
    budget = KIMI_K2_6.clamp_max_tokens(near_full)
    assert near_full + budget + KIMI_K2_6.margin(near_full) <= KIMI_K2_6.context_window
    with pytest.raises(ContextLengthError):
        KIMI_K2_6.clamp_max_tokens(130_000)
    assert KIMI_K2_5.fits(130_000)


def test_users_register_their_own_profiles() -> None:
    profiles = ModelProfiles()
    mine = profiles.register(ModelProfile("kimi-k2-6-custom", 32768, 4096))
    assert profiles.get("kimi-k2-6-custom") is mine
    with pytest.raises(ConfigurationError, match="already exists"):
        profiles.register(ModelProfile("kimi-k2-6-custom", 32768, 4096))
    with pytest.raises(ConfigurationError, match="unknown model 'nope'"):
        profiles.get("nope")
