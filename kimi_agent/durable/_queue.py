"""A DBOS queue for agent runs: a concurrency limit and a rate limit shared by every worker.

The gateway caps the requests an *account* has in flight (Free 5, Pro 25, Max 100; over the
cap it answers 429 `concurrency_limit` at once). A run makes one model request at a time
(its tools run between requests), so a queue whose `concurrency` is at most the account's
cap keeps a batch of a thousand conversations from overrunning the gateway, however many
workers dequeue from it: DBOS counts the runs in flight in the shared system database.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbos import DBOS, Queue

from kimi_agent.durable._errors import DurableConfigurationError

__all__ = ["RunQueue"]


@dataclass(frozen=True)
class RunQueue:
    """Where `DurableAgent.start` puts runs instead of starting them at once.

    `concurrency`: runs in flight at once across all workers; `worker_concurrency`: per
    worker process; `rate_limit=(n, seconds)`: at most n runs start per that many seconds;
    `poll_interval`: how often a worker looks for work (seconds). Create it before `launch`.

    Raises:
        DurableConfigurationError: a limit is below 1, or a period/interval not positive.
    """

    name: str = "kimi-agent-runs"
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        for label, value in (("concurrency", self.concurrency),
                             ("worker_concurrency", self.worker_concurrency)):
            if value is not None and value < 1:
                raise DurableConfigurationError(f"RunQueue {label} must be at least 1")
        if self.rate_limit is not None and (self.rate_limit[0] < 1 or self.rate_limit[1] <= 0):
            raise DurableConfigurationError(
                "RunQueue rate_limit is (runs, seconds) with runs >= 1 and seconds > 0")
        if self.poll_interval <= 0:
            raise DurableConfigurationError("RunQueue poll_interval must be positive")

    async def registered(self) -> Queue:
        """The queue, declared by `register` on first use in this engine's life."""
        from dbos import _dbos

        key = (self.name, id(_dbos._dbos_global_instance))   # a relaunch declares it again
        queue = _registered.get(key)
        if queue is None:
            queue = _registered[key] = await self.register()
        return queue

    async def register(self) -> Queue:
        """Declare (or update) the queue in the system database; `DurableAgent.start` calls
        it, and every launched worker then dequeues from it.

        Raises:
            DurableConfigurationError: the engine is not launched in this process.
        """
        limiter = None if self.rate_limit is None else {
            "limit": self.rate_limit[0], "period": float(self.rate_limit[1])}
        try:
            return await DBOS.register_queue_async(
                self.name, global_concurrency=self.concurrency,
                worker_concurrency=self.worker_concurrency,
                limiter=limiter,  # type: ignore[arg-type]
                polling_interval_sec=self.poll_interval, on_conflict="always_update")
        except Exception as error:
            if "launch" in str(error).lower() or "not been" in str(error).lower():
                raise DurableConfigurationError(
                    "launch the durable engine (kimi_agent.durable.launch) before using a "
                    "RunQueue") from error
            raise


_registered: dict[tuple[str, int], Queue] = {}
