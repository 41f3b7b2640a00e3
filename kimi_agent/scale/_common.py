"""What both shared limiters share: argument checks and the holder's renewal loop."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import anyio

from kimi_agent.errors import ConfigurationError, SessionError

__all__ = ["check_limit", "poll_pause", "renew_until_cancelled"]

logger = logging.getLogger("kimi_agent.scale")


def check_limit(limit: int, ttl: float, key: str) -> None:
    """Raises `ConfigurationError` for a limit that is not a positive int, a ttl under 1 s, or
    an empty key."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"a concurrency limit must be a positive integer, not {limit!r}")
    if not ttl >= 1.0:
        raise ConfigurationError(f"a slot ttl must be at least 1 s, not {ttl!r}")
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"a limiter key must be a non-empty str, not {key!r}")


def poll_pause(poll: float) -> float:
    """`poll` seconds, jittered by ±30 % so that waiters on many replicas spread out."""
    return poll * random.uniform(0.7, 1.3)


async def renew_until_cancelled(renew: Callable[[], Awaitable[bool]], every: float,
                                what: str) -> None:
    """Call `renew()` every `every` seconds; a failed renewal is logged, not raised (the slot
    then expires by itself, which the cap tolerates: it only lets one more request in)."""
    while True:
        await anyio.sleep(every)
        try:
            if not await renew():
                logger.warning("%s expired while held", what)
                return
        except SessionError as error:
            logger.warning("could not renew %s: %s", what, error)
