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


def test_each_kind_of_failure_has_its_own_retry_budget() -> None:
    from datetime import UTC, datetime

    from kimi_agent.errors import (
        ConcurrencyLimitError,
        EmptyReplyError,
        GatewayConnectionError,
        GatewayTimeoutError,
        SpendCapError,
    )

    policy = RetryPolicy(random=lambda: 0.5, wall_clock=lambda: 1_000.0)
    assert [policy.delay_for(ServerError("x"), i) for i in range(4)] == [0.75, 1.5, 3.0, None]
    assert policy.delay_for(GatewayConnectionError("x"), 0) == 0.75
    assert policy.delay_for(GatewayConnectionError("x"), 1) is None
    assert policy.delay_for(GatewayTimeoutError("x", phase="headers"), 0) is None
    assert policy.delay_for(EmptyReplyError("x"), 0) == 0.75
    assert policy.delay_for(EmptyReplyError("x"), 1) is None
    assert policy.delay_for(ConcurrencyLimitError("x"), 9) == 2.0, "1-3 s, jittered"
    assert policy.delay_for(ConcurrencyLimitError("x"), 10) is None
    assert policy.delay_for(ConcurrencyLimitError("x", retry_after=2.5), 0) == 2.5
    soon = SpendCapError("x", reset_at=datetime.fromtimestamp(1_010, UTC))
    later = SpendCapError("x", reset_at=datetime.fromtimestamp(1_000 + 3 * 3600, UTC))
    assert policy.delay_for(soon, 0) == 11.0
    assert policy.delay_for(later, 0) is None, "beyond the deadline: raised at once"
    assert policy.delay_for(SpendCapError("x"), 0) is None, "no known reset: raised at once"


def test_reset_headers_and_messages_are_read_in_each_documented_form() -> None:
    from datetime import UTC, datetime

    from kimi_agent.gateway._headers import reset_from_message, reset_time

    assert reset_time("1716705600") == datetime(2024, 5, 26, 6, 40, tzinfo=UTC)
    assert reset_time("30", now=1_716_705_570) == datetime(2024, 5, 26, 6, 40, tzinfo=UTC)
    assert reset_time("2024-05-26T06:40:00Z") == datetime(2024, 5, 26, 6, 40, tzinfo=UTC)
    assert reset_time("soon") is None and reset_time(None) is None
    assert reset_from_message("rate_limit_5h exceeded: 50.00 / 50.00 used; resets at "
                              "2026-05-25 14:00:00 UTC") == datetime(2026, 5, 25, 14,
                                                                      tzinfo=UTC)
    assert reset_from_message("resets at 2026-05-25 22:00 +08:00") == datetime(
        2026, 5, 25, 14, tzinfo=UTC)
    assert reset_from_message("no time here") is None
