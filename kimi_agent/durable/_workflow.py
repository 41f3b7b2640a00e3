"""A small workflow API for scripted multi-step work on DBOS.

    inbox = Workflow("inbox", client=lambda: GatewayClient(url, key))

    @inbox.main
    async def handle(flow: Flow, message: dict) -> dict:
        triage = await flow.agent("classify", classifier, message["text"])   # structured
        if triage.urgent:                                                      # a branch
            decision = await flow.approval("escalate", {"summary": triage.summary})
        ticket = await flow.step("open-ticket", open_ticket, triage.order_id,
                                 retry=RetryPolicy(attempts=3, backoff=0.5))
        return {...}

    run_id = await inbox.start({"text": "..."})
    await inbox.result(run_id)

Each `flow.step` is a DBOS step (its value checkpointed; retried by its policy; when every
attempt failed the workflow fails with `StepRetriesExhaustedError`). `flow.agent` runs an
agent inside the workflow with its model calls and tool executions as steps, and returns the
output re-read into the agent's output type. `flow.approval` waits durably for
`Workflow.decide(run_id, name, approved=...)` from any process. Branches and loops are plain
Python: the workflow function must take the same path again on replay (decide on step
values, not on the clock or randomness).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSMaxStepRetriesExceeded
from pydantic import BaseModel, TypeAdapter

from kimi_agent.agent._agent import Agent
from kimi_agent.agent._result import RunResult
from kimi_agent.durable._errors import DurableConfigurationError, StepRetriesExhaustedError
from kimi_agent.durable._results import workflow_result
from kimi_agent.durable._steps import DurableSteps
from kimi_agent.gateway._client import GatewayClient
from kimi_agent.models._profiles import get_profile

__all__ = ["Approval", "Flow", "RetryPolicy", "Workflow"]

T = TypeVar("T")
_names: set[str] = set()


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is retried: `attempts` in all (1 = no retry), the first wait `backoff`
    seconds, each next wait `multiplier` times longer.

    Raises:
        DurableConfigurationError: attempts below 1, a negative backoff or a multiplier
            below 1.
    """

    attempts: int = 1
    backoff: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.multiplier < 1:
            raise DurableConfigurationError(
                "RetryPolicy needs attempts >= 1, backoff >= 0 and multiplier >= 1")


@dataclass(frozen=True)
class Approval:
    """A person's decision on an approval step."""

    approved: bool
    note: str = ""


class Flow:
    """What a workflow function uses to run its steps (one per workflow execution)."""

    def __init__(self, make_client: Callable[[], GatewayClient]) -> None:
        self._make_client = make_client
        self._client: GatewayClient | None = None

    @property
    def client(self) -> GatewayClient:
        """The gateway client of this execution (made on first use, closed at the end)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def workflow_id(self) -> str:
        """This workflow's id."""
        workflow_id = DBOS.workflow_id
        assert workflow_id is not None
        return workflow_id

    async def step(self, name: str, func: Callable[..., Any], *args: Any,
                   retry: RetryPolicy | None = None, **kwargs: Any) -> Any:
        """Run `func(*args, **kwargs)` (sync or async) as a checkpointed step.

        Raises:
            StepRetriesExhaustedError: every attempt of `retry` raised (with one attempt,
                the step's own error is raised as itself).
        """
        policy = retry or RetryPolicy()
        options: dict[str, Any] = {"name": name}
        if policy.attempts > 1:
            options.update(retries_allowed=True, max_attempts=policy.attempts,
                           interval_seconds=policy.backoff, backoff_rate=policy.multiplier)
        try:
            return await DBOS.run_step_async(options, func, *args,  # type: ignore[call-overload]
                                             **kwargs)
        except DBOSMaxStepRetriesExceeded as error:
            last = error.errors[-1] if error.errors else error
            raise StepRetriesExhaustedError(name, len(error.errors) or policy.attempts,
                                            f"{type(last).__name__}: {last}") from None

    async def agent(self, name: str, agent: Agent[Any, T], prompt: str, *, deps: Any = None,
                    retry: RetryPolicy | None = None) -> T:
        """Run `agent` on `prompt` inside the workflow and return its output: its model
        calls and tool executions are steps, so a recovered workflow does not pay again.

        With `retry`, a run that raises is run again (after a durable sleep) up to its
        attempts, then `StepRetriesExhaustedError`. `deps` are made inside the workflow
        (they are not stored), so open connections are fine here.

        Raises:
            StepRetriesExhaustedError: every attempt raised (with `retry`).
            The errors of `Agent.run` (without `retry`).
        """
        return (await self.agent_result(name, agent, prompt, deps=deps, retry=retry)).output

    async def agent_result(self, name: str, agent: Agent[Any, T], prompt: str, *,
                           deps: Any = None, retry: RetryPolicy | None = None
                           ) -> RunResult[T]:
        """`agent`, returning the whole `RunResult` (its steps and tool calls too); on
        replay it is rebuilt from the checkpoints, identical.

        Raises:
            The errors of `agent`.
        """
        _adopt(agent)
        policy = retry or RetryPolicy()
        wait = policy.backoff
        for attempt in range(1, policy.attempts + 1):
            try:
                result = await agent._execute(prompt, deps, None, emit=None, stream=False,
                                              client=self.client)
            except Exception as error:
                if policy.attempts == 1:
                    raise
                if attempt == policy.attempts:
                    raise StepRetriesExhaustedError(
                        name, attempt, f"{type(error).__name__}: {error}") from error
                await DBOS.sleep_async(wait)
                wait *= policy.multiplier
                continue
            return result
        raise AssertionError("unreachable")

    async def approval(self, name: str, details: Any = None, *,
                       poll: float = 3600.0) -> Approval:
        """Wait (durably, as long as it takes) for a person's decision on `name`; `details`
        is published for whoever decides (`Workflow.pending`)."""
        await DBOS.set_event_async(f"approval:{name}", {"details": details, "open": True})
        while True:
            decision = await DBOS.recv_async(f"approval:{name}", timeout_seconds=poll)
            if decision is not None:
                await DBOS.set_event_async(f"approval:{name}",
                                           {"details": details, "open": False})
                return Approval(bool(decision["approved"]), str(decision.get("note", "")))


_adopted: set[int] = set()


def _adopt(agent: Agent[Any, Any]) -> None:
    """Give `agent` the durable step hooks (once)."""
    if id(agent) in _adopted:
        return
    _adopted.add(id(agent))
    router = agent.router

    def profile(name: str) -> Any:
        for candidate in (router.primary, router.fallback):
            if candidate is not None and candidate.name == name:
                return candidate
        return get_profile(name)

    agent.add_hooks(DurableSteps(profile))


class Workflow:
    """A named, durable workflow; decorate its function with `main`. Create it (in every
    process that runs or recovers it) before `launch`.

    Raises:
        DurableConfigurationError: a second workflow with the same name in this process.
    """

    def __init__(self, name: str, *,
                 client: Callable[[], GatewayClient] = GatewayClient) -> None:
        if name in _names:
            raise DurableConfigurationError(f"a workflow named {name!r} exists already")
        _names.add(name)
        self.name = name
        self._client = client
        self._dbos: Any = None

    def main(self, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """Register `func(flow, *args)` as this workflow's body (a decorator)."""
        make_client = self._client

        async def body(*args: Any, **kwargs: Any) -> Any:
            flow = Flow(make_client)
            try:
                value = await func(flow, *args, **kwargs)
            finally:
                await flow._close()
            return value.model_dump(mode="json") if isinstance(value, BaseModel) else value

        self._dbos = DBOS.workflow(name=f"kimi_agent.workflow:{self.name}")(body)
        return func

    async def start(self, *args: Any, workflow_id: str | None = None, **kwargs: Any) -> str:
        """Start the workflow; returns its id at once (the same id twice starts it once).

        Raises:
            DurableConfigurationError: no function registered with `main`.
        """
        if self._dbos is None:
            raise DurableConfigurationError(f"workflow {self.name!r} has no @main function")
        if workflow_id and await DBOS.get_workflow_status_async(workflow_id) is not None:
            return workflow_id  # started before: never run it twice
        with SetWorkflowID(workflow_id) if workflow_id else nullcontext():
            handle: Any = await DBOS.start_workflow_async(self._dbos, *args, **kwargs)
        return str(handle.get_workflow_id())

    async def result(self, workflow_id: str, *, timeout: float | None = None,
                     output_type: Any = None) -> Any:
        """Wait for the workflow to end; its value (read into `output_type` if given).

        Raises:
            TimeoutError: `timeout` seconds passed first.
            StepRetriesExhaustedError: a step failed on every attempt of its policy.
            WorkflowFailedError: cancelled, or failed with an error that is not ours.
        """
        value = await workflow_result(workflow_id, timeout)
        return value if output_type is None else TypeAdapter(output_type).validate_python(value)

    @staticmethod
    async def pending(workflow_id: str, name: str) -> Any:
        """The details of the open approval `name` of a workflow (None when not open)."""
        event = await DBOS.get_event_async(workflow_id, f"approval:{name}", timeout_seconds=0)
        return event["details"] if event and event["open"] else None

    @staticmethod
    async def decide(workflow_id: str, name: str, *, approved: bool, note: str = "") -> None:
        """Decide the approval step `name` of a workflow (from any process); sending a
        decision twice delivers it once."""
        await DBOS.send_async(workflow_id, {"approved": approved, "note": note},
                              f"approval:{name}",
                              idempotency_key=f"{workflow_id}:approval:{name}")
