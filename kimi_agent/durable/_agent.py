"""`DurableAgent`: an agent's run as a DBOS workflow.

The workflow runs the agent as usual; the `DurableSteps` hooks make each model call and each
tool execution a step. A run that stops for approval waits in the workflow on `DBOS.recv`,
durably: `approve` (from any process, hours later) sends the decisions, and the workflow
resumes the run. The session is written per step as always; a recovered workflow first
takes the session back to where the workflow found it and replays the run from its
checkpoints, so the conversation and the workflow agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic

from dbos import DBOS, SetWorkflowID
from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypeVar

from kimi_agent._usage import RunUsage
from kimi_agent.agent._agent import Agent
from kimi_agent.agent._result import PendingApproval, RunResult
from kimi_agent.durable._errors import DurableConfigurationError
from kimi_agent.durable._queue import RunQueue
from kimi_agent.durable._results import workflow_result
from kimi_agent.durable._steps import DurableSteps
from kimi_agent.errors import ApprovalError
from kimi_agent.gateway._client import GatewayClient
from kimi_agent.models._profiles import ModelProfile, get_profile
from kimi_agent.sessions._protocol import MemorySession, Session

__all__ = ["APPROVAL_TOPIC", "PENDING_EVENT", "DurableAgent", "DurableRun", "DurableRunResult",
           "check_decisions"]

OutputT = TypeVar("OutputT", default=str)

APPROVAL_TOPIC = "kimi.approval"
PENDING_EVENT = "kimi.pending"
_registered: set[str] = set()


@dataclass(frozen=True)
class DurableRunResult(Generic[OutputT]):
    """What a durable run ended with: the answer (re-read into the agent's output type),
    the session it wrote, the models of its steps and its usage."""

    workflow_id: str
    output: OutputT
    session_id: str
    models: list[str] = field(default_factory=list)
    usage: RunUsage = field(default_factory=RunUsage)


@dataclass(frozen=True)
class DurableRun(Generic[OutputT]):
    """A started durable run: its workflow id, and its result once it is over."""

    workflow_id: str
    agent: DurableAgent[OutputT]

    async def result(self, timeout: float | None = None) -> DurableRunResult[OutputT]:
        """Wait for the run to end (see `DurableAgent.result`)."""
        return await self.agent.result(self.workflow_id, timeout=timeout)


class DurableAgent(Generic[OutputT]):
    """An `Agent` whose runs are DBOS workflows: crash-safe, resumable, approvable later.

    Create it (in every process that runs or recovers these runs) before `launch`. `name`
    names the workflow (default: the agent's name), so it must be the same in every process.
    `client` makes the gateway client of one workflow execution (a recovered workflow runs
    on DBOS's own event loop, so a client is made per execution; default `GatewayClient()`
    from the environment). `sessions` opens the session of a `session_id` (default: an
    in-memory session, rebuilt from the checkpoints on recovery). `queue` makes `start`
    enqueue runs instead of starting them. `approval_poll` is how long one `recv` waits (s);
    a run waits for approval as long as it takes.

    The deps of a run are a workflow argument: DBOS stores them (pickled), so they must be
    picklable — pass ids and paths, not open connections.

    Raises:
        DurableConfigurationError: no name, or two durable agents with the same name.
    """

    def __init__(
        self,
        agent: Agent[Any, OutputT],
        *,
        name: str | None = None,
        client: Callable[[], GatewayClient] = GatewayClient,
        sessions: Callable[[str], Session] | None = None,
        queue: RunQueue | None = None,
        approval_poll: float = 3600.0,
    ) -> None:
        self.name = name or agent.name
        if not self.name:
            raise DurableConfigurationError("a DurableAgent needs a name (name= or the "
                                            "agent's name): it names the workflow")
        if self.name in _registered:
            raise DurableConfigurationError(f"a DurableAgent named {self.name!r} exists "
                                            "already in this process")
        _registered.add(self.name)
        self.agent = agent
        self.queue = queue
        self._client = client
        self._sessions = sessions
        self._approval_poll = approval_poll
        output = agent._config.output
        self._adapter: TypeAdapter[Any] = TypeAdapter(
            output.output_type if output is not None else str)
        agent.add_hooks(DurableSteps(self._profile))
        body = self._body

        async def run_agent(prompt: str, session_id: str | None, deps: Any) -> dict[str, Any]:
            return await body(prompt, session_id, deps)

        self._workflow = DBOS.workflow(name=f"kimi_agent.run:{self.name}")(run_agent)

    # ------------------------------------------------------------------ public calls

    async def start(self, prompt: str, *, session_id: str | None = None, deps: Any = None,
                    workflow_id: str | None = None) -> DurableRun[OutputT]:
        """Start (or, with a queue, enqueue) a run; returns at once.

        `workflow_id` makes the start idempotent: starting the same id again returns the
        same run and does not run it twice. Without `session_id` the run's session is
        named after its workflow id.

        Raises:
            TypeError: `prompt` is not a str.
            DurableConfigurationError: the engine is not launched.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        if workflow_id and await DBOS.get_workflow_status_async(workflow_id) is not None:
            return DurableRun(workflow_id, self)  # started before: never run it twice
        with SetWorkflowID(workflow_id) if workflow_id else nullcontext():
            if self.queue is not None:
                queue = await self.queue.registered()
                handle = await queue.enqueue_async(self._workflow, prompt, session_id, deps)
            else:
                handle = await DBOS.start_workflow_async(self._workflow, prompt, session_id,
                                                         deps)
        return DurableRun(handle.get_workflow_id(), self)

    async def run(self, prompt: str, *, session_id: str | None = None, deps: Any = None,
                  workflow_id: str | None = None) -> DurableRunResult[OutputT]:
        """`start`, then wait for the result (a run waiting for approval keeps waiting).

        Raises:
            The errors of `start` and `result`.
        """
        started = await self.start(prompt, session_id=session_id, deps=deps,
                                   workflow_id=workflow_id)
        return await started.result()

    async def result(self, workflow_id: str, *, timeout: float | None = None
                     ) -> DurableRunResult[OutputT]:
        """Wait for the run `workflow_id` to end and return its result.

        Raises:
            TimeoutError: `timeout` seconds passed first.
            WorkflowFailedError: the workflow was cancelled, or failed with an error that
                is not one of ours (ours — e.g. `ModelFailedError` — are raised as
                themselves).
        """
        saved = await workflow_result(workflow_id, timeout)
        return DurableRunResult(
            workflow_id=workflow_id, output=self._adapter.validate_python(saved["output"]),
            session_id=saved["session_id"], models=list(saved["models"]),
            usage=RunUsage(**saved["usage"]))

    async def pending_approvals(self, workflow_id: str) -> list[PendingApproval]:
        """The calls the run `workflow_id` waits on (empty when it waits on none)."""
        pending = await DBOS.get_event_async(workflow_id, PENDING_EVENT, timeout_seconds=0)
        if not pending:
            return []
        return [PendingApproval(**call) for call in pending["calls"]]

    async def approve(self, workflow_id: str, *, approved: Iterable[str] = (),
                      rejected: Mapping[str, str] | None = None) -> None:
        """Decide the calls the run `workflow_id` waits on; the run resumes.

        Works from any process launched on the same system database. Every pending call
        must be decided; sending the same decision twice delivers it once.

        Raises:
            ApprovalError: the run waits on nothing, or an id is unknown, decided twice or
                left undecided.
        """
        approved_ids = list(dict.fromkeys(approved))
        rejected = dict(rejected or {})
        pending = await DBOS.get_event_async(workflow_id, PENDING_EVENT, timeout_seconds=0)
        check_decisions(workflow_id, pending, approved_ids, rejected)
        await DBOS.send_async(workflow_id, {"approved": approved_ids, "rejected": rejected},
                              APPROVAL_TOPIC,
                              idempotency_key=f"{workflow_id}:approval:{pending['round']}")

    # ------------------------------------------------------------------ the workflow

    def _profile(self, name: str) -> ModelProfile:
        router = self.agent.router
        for profile in (router.primary, router.fallback):
            if profile is not None and profile.name == name:
                return profile
        return get_profile(name)

    async def _body(self, prompt: str, session_id: str | None, deps: Any) -> dict[str, Any]:
        workflow_id = DBOS.workflow_id
        assert workflow_id is not None
        sid = session_id or workflow_id
        session = self._sessions(sid) if self._sessions is not None else MemorySession(sid)
        await _rewind(session)
        agent = self.agent
        async with self._client() as client:
            result = await agent._execute(prompt, deps, session, emit=None, stream=False,
                                          client=client)
            models = [step.model for step in result.steps]
            usage = result.usage
            round_ = 0
            while result.status == "pending_approval":
                round_ += 1
                decision = await self._wait_for_decision(result, round_)
                try:
                    result = await agent._resume(session, decision["approved"],
                                                 decision["rejected"], deps, emit=None,
                                                 stream=False, client=client)
                except ApprovalError:
                    continue  # the run changed under the decision: ask again
                models += [step.model for step in result.steps]
                usage += result.usage
        output: Any = result.output
        if isinstance(output, BaseModel):
            output = output.model_dump(mode="json")
        return {"output": output, "session_id": sid, "models": models,
                "usage": _usage_dict(usage)}

    async def _wait_for_decision(self, result: RunResult[Any], round_: int) -> dict[str, Any]:
        calls = [{"call_id": p.call_id, "tool": p.tool, "arguments": p.arguments,
                  "raw_arguments": p.raw_arguments} for p in result.pending_approvals]
        await DBOS.set_event_async(PENDING_EVENT, {"round": round_, "calls": calls})
        while True:
            decision = await DBOS.recv_async(APPROVAL_TOPIC, timeout_seconds=self._approval_poll)
            if decision is not None:
                await DBOS.set_event_async(PENDING_EVENT, {"round": round_, "calls": []})
                return dict(decision)


def check_decisions(workflow_id: str, pending: Any, approved: Iterable[str],
                    rejected: Mapping[str, str]) -> None:
    """Check decisions against the calls a run waits on (its `PENDING_EVENT`).

    Raises:
        ApprovalError: it waits on nothing, or an id is unknown, decided twice or left
            undecided.
    """
    waiting = {call["call_id"] for call in pending["calls"]} if pending else set()
    if not waiting:
        raise ApprovalError(f"workflow {workflow_id!r} waits on no approval")
    approved_ids = set(approved)
    decided = approved_ids | set(rejected)
    for problem, ids in (("are not pending", decided - waiting),
                         ("are both approved and rejected", approved_ids & set(rejected)),
                         ("have no decision", waiting - decided)):
        if ids:
            raise ApprovalError(f"calls {sorted(ids)} {problem} in workflow "
                                f"{workflow_id!r}; pending: {sorted(waiting)}")


async def _rewind(session: Session) -> None:
    """Take the session back to its length when the workflow first ran (a checkpoint): a
    recovered workflow replays its steps into it again, identically."""

    async def length() -> int:
        return len(await session.get_items())

    start = await DBOS.run_step_async({"name": "session:start"}, length)
    items = len(await session.get_items())
    for _ in range(items - start):
        await session.pop_item()


def _usage_dict(usage: RunUsage) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(usage):
        return asdict(usage)
    return dict(vars(usage))
