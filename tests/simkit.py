"""Helpers for tests that run agents on the gateway simulator over loopback."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from kimi_agent import GatewayClient, RetryPolicy
from kimi_agent.testing import GatewaySimulator


async def _no_wait(_: float) -> None:
    await anyio.sleep(0)


FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.0, sleep=_no_wait)


@asynccontextmanager
async def sim_client(sim: GatewaySimulator, retry: RetryPolicy = FAST_RETRY
                     ) -> AsyncIterator[GatewayClient]:
    """A GatewayClient talking to `sim` served on a real loopback port, without real waits."""
    async with sim.serve() as url, GatewayClient(url, sim.api_key, retry=retry) as client:
        yield client


@dataclass
class Timeline:
    """Start and end times of tool executions, to measure overlap instead of wall-clock."""

    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    active: int = 0
    max_active: int = 0

    def start(self, key: str) -> float:
        self.order.append(key)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        return anyio.current_time()

    def end(self, key: str, started: float) -> None:
        self.active -= 1
        self.spans[key] = (started, anyio.current_time())

    def all_overlap(self) -> bool:
        """True when some instant lies inside every span."""
        latest_start = max(s for s, _ in self.spans.values())
        earliest_end = min(e for _, e in self.spans.values())
        return latest_start < earliest_end

    def none_overlap(self) -> bool:
        spans = sorted(self.spans.values())
        return all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
