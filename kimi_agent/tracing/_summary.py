"""`TraceSummary`: a run's tree with durations, for a terminal (`--trace`), no OpenTelemetry.

    invoke_agent 客服  1.84 s  (3 requests, 2,310 prompt / 1,024 cached / 180 completion tokens)
    ├─ chat kimi-k2-6  0.62 s  → kimi-k2-6  tool_calls
    ├─ execute_tool get_order  0.12 s  ok
    ├─ execute_tool faq_search  0.08 s  ok
    └─ chat kimi-k2-6  0.71 s  → kimi-k2-6  stop
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kimi_agent.agent._hooks import ModelCall, ModelReply, RunHooks, RunInfo, ToolExecution
from kimi_agent.agent._result import RunResult


@dataclass(slots=True)
class Node:
    """One box of a run: what it was, when it started and ended, what it said."""

    name: str
    started: float
    ended: float = 0.0
    note: str = ""
    children: list[Node] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.ended - self.started)


class TraceSummary(RunHooks):
    """Records every run it sees as a tree; `render()` draws the last one."""

    def __init__(self) -> None:
        self.runs: list[Node] = []
        self._open: dict[str, Node] = {}

    def _run(self, run_id: str) -> Node | None:
        return self._open.get(run_id)

    async def on_run(self, info: RunInfo,
                     proceed: Callable[[], Awaitable[RunResult[Any]]]) -> RunResult[Any]:
        node = Node(f"invoke_agent {info.agent_name}", time.perf_counter())
        self.runs.append(node)
        self._open[info.run_id] = node
        try:
            result = await proceed()
            u = result.usage
            node.note = (f"{result.status}; {u.requests} requests, {u.prompt_tokens:,} prompt / "
                         f"{u.cached_tokens:,} cached / {u.completion_tokens:,} completion "
                         "tokens" + (f", ${u.cost:.4f}" if u.cost else ""))
            return result
        except BaseException as error:
            node.note = f"failed: {type(error).__name__}"
            raise
        finally:
            node.ended = time.perf_counter()
            self._open.pop(info.run_id, None)

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        node = Node(f"chat {call.primary}", time.perf_counter())
        parent = self._run(call.run_id)
        if parent is not None:
            parent.children.append(node)
        try:
            completion, profile, reason = await proceed()
            node.note = f"→ {profile.name}  {completion.finish_reason or ''}".rstrip() + (
                f"  (fallback: {reason})" if reason else "")
            return completion, profile, reason
        except BaseException as error:
            node.note = f"failed: {type(error).__name__}"
            raise
        finally:
            node.ended = time.perf_counter()

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        node = Node(f"execute_tool {execution.tool.name}", time.perf_counter())
        parent = self._run(execution.ctx.run_id)
        if parent is not None:
            parent.children.append(node)
        try:
            value = await proceed()
            node.note = "ok"
            return value
        except BaseException as error:
            node.note = f"error: {type(error).__name__}"
            raise
        finally:
            node.ended = time.perf_counter()

    def render(self, run: Node | None = None) -> str:
        """The tree of `run` (the last run recorded by default), one box per line."""
        run = run or (self.runs[-1] if self.runs else None)
        if run is None:
            return "(no run traced)"
        lines = [f"{run.name}  {run.duration:.2f} s  ({run.note})"]
        children = sorted(run.children, key=lambda n: n.started)
        for i, child in enumerate(children):
            branch = "└─" if i == len(children) - 1 else "├─"
            offset = child.started - run.started
            lines.append(f"{branch} {child.name}  +{offset:.2f} s  {child.duration:.2f} s  "
                         f"{child.note}".rstrip())
        return "\n".join(lines)
