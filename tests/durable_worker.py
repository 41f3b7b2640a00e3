"""The worker processes of the durable tests: durable agents on a DBOS system database.

`python -m tests.durable_worker COMMAND --db URL --url SIM_URL --key KEY ...` (from the
repository root). The gateway simulator runs in the test process (`responder` below is the
model it plays); the worker runs DBOS and the agent. Each command writes one JSON file
(`--out`) with what it did, for the test to read.

- run: the conversations c1..cN one after another, each a durable run `conv-cI` (prompt
  "会话 cI …"). Each run: step 1 calls `bump` twice in parallel (k2-6), step 2 once, step 3
  answers with the tool results. `bump` counts its executions in the `effects` table of
  `--effects` (a SQLite file). With `--block tool:KEY` the tool for KEY writes `--ready` and
  hangs before its side effect (once its sibling calls are checkpointed), for the test to
  `kill -9` the process there; the model's blocking is the responder's (test side).
- refund-start: a run whose tool needs approval; writes the pending calls to `--out` and
  waits for the result (the test kills it while it waits).
- approve: `--workflow ID --approve CALL`, from a process of its own (another executor id).
- queue: workers sharing `--runs` queued runs (concurrency 5), each one model call;
  `--enqueue` starts them.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from kimi_agent import Agent, GatewayClient, RunContext, tool
from kimi_agent.testing import Reply, SimRequest

CONV = re.compile(r"会话 (c\d+)")
BLOCK_ENV: dict[str, str] = {}


# --------------------------------------------------------------------------- the model


def model_key(request: SimRequest) -> str:
    """`model:cI:S`: the conversation and the number of model replies before this one."""
    match = CONV.search(request.last_user_text)
    conv = match.group(1) if match else "?"
    replies = sum(1 for m in request.messages if m.get("role") == "assistant")
    return f"model:{conv}:{replies}"


def reply_for(request: SimRequest) -> Reply:
    """The scripted model: stateless, it answers from the request alone."""
    if "退款" in request.last_user_text:
        if not request.tool_results:
            return Reply(tool_calls=[("refund", {"order_id": "R1"})])
        return Reply(text=f"退款结果：{request.tool_results[-1].content}")
    conv = model_key(request).split(":")[1]
    if "排队" in request.last_user_text:                 # the queue's runs: one call each
        return Reply(text=f"会话 {conv} 已处理")
    replies = sum(1 for m in request.messages if m.get("role") == "assistant")
    if replies == 0:
        return Reply(reasoning="两个一起查", tool_calls=[
            ("bump", {"key": f"{conv}-s1-a"}), ("bump", {"key": f"{conv}-s1-b"})])
    if replies == 1:
        return Reply(tool_calls=[("bump", {"key": f"{conv}-s2-a"})])
    results = [m["content"] for m in request.messages if m.get("role") == "tool"]
    return Reply(text=f"会话 {conv} 完成：" + "；".join(results))


def schedule(convs: int) -> list[str]:
    """Every point of an uninterrupted `run`, in order (model calls and tool executions)."""
    points: list[str] = []
    for i in range(1, convs + 1):
        c = f"c{i}"
        points += [f"model:{c}:0", f"tool:{c}-s1-a", f"tool:{c}-s1-b", f"model:{c}:1",
                   f"tool:{c}-s2-a", f"model:{c}:2"]
    return points


# --------------------------------------------------------------------------- the tools


@tool
async def bump(ctx: RunContext[Any], key: str) -> dict[str, Any]:
    """记录一次副作用并返回计数键。

    Args:
        key: 副作用的键。
    """
    if BLOCK_ENV.get("block") == f"tool:{key}":
        await _wait_for_siblings(key)
        Path(BLOCK_ENV["ready"]).write_text(key, encoding="utf-8")
        await anyio.sleep(3600)                      # the test kills the process here
    with sqlite3.connect(ctx.deps["effects"]) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, n INTEGER)")
        conn.execute("INSERT INTO effects VALUES (?, 1) ON CONFLICT(key) DO UPDATE SET n = n + 1",
                     (key,))
    return {"键": key, "值": len(key) * 7}


async def _wait_for_siblings(key: str) -> None:
    """Before hanging, let the other calls of the same step finish and be checkpointed, so
    a kill here interrupts exactly one execution."""
    from dbos import DBOS

    if not key.endswith("s1-b") and not key.endswith("s1-a"):
        return
    sibling = key[:-1] + ("a" if key.endswith("b") else "b")
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    for _ in range(500):
        steps = await DBOS.list_workflow_steps_async(workflow_id)
        if any(s["function_name"].startswith("tool:") and s["function_name"].endswith(":bump")
               and s["output"] is not None and sibling in json.dumps(s["output"],
                                                                     ensure_ascii=False)
               for s in steps):
            return
        await anyio.sleep(0.02)
    raise RuntimeError(f"the sibling of {key} never finished")


@tool(requires_approval=True)
async def refund(ctx: RunContext[Any], order_id: str) -> str:
    """退款（需要审批）。

    Args:
        order_id: 订单号。
    """
    with sqlite3.connect(ctx.deps["effects"]) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, n INTEGER)")
        conn.execute("INSERT INTO effects VALUES (?, 1) ON CONFLICT(key) DO UPDATE SET n = n + 1",
                     (f"refund-{order_id}",))
    return f"订单 {order_id} 已退款"


# --------------------------------------------------------------------------- commands


def durable_agent(args: argparse.Namespace, *, queue: Any = None) -> Any:
    from kimi_agent.durable import DurableAgent

    agent: Agent[str] = Agent(tools=[bump, refund], name="durable-test",
                              instructions="你是网店客服。")
    sessions = None
    if args.sessions:
        from kimi_agent import SQLiteStore

        sessions = SQLiteStore(args.sessions).session
    return DurableAgent(agent, client=lambda: GatewayClient(args.url, args.key), queue=queue,
                        sessions=sessions)


async def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    from kimi_agent.durable import launch

    durable = durable_agent(args)
    launch(args.db, executor_id=args.executor)
    answers = {}
    for i in range(1, args.convs + 1):
        result = await durable.run(f"会话 c{i}：请处理", deps={"effects": args.effects},
                                   workflow_id=f"conv-c{i}")
        answers[f"c{i}"] = result.output
    if args.sessions:
        from kimi_agent import SQLiteStore

        store = SQLiteStore(args.sessions)
        stored = {f"c{i}": [m.role for m in await store.session(f"conv-c{i}").get_items()]
                  for i in range(1, args.convs + 1)}
        return {"answers": answers, "sessions": stored}
    return {"answers": answers}


async def cmd_refund_start(args: argparse.Namespace) -> dict[str, Any]:
    from kimi_agent.durable import launch

    durable = durable_agent(args)
    launch(args.db, executor_id=args.executor)
    run = await durable.start("我要退款 R1", deps={"effects": args.effects},
                              workflow_id="refund-1")
    pending: list[Any] = []
    with anyio.fail_after(30):
        while not pending:
            pending = await durable.pending_approvals(run.workflow_id)
            await anyio.sleep(0.05)
    Path(args.out).write_text(json.dumps([p.call_id for p in pending]), encoding="utf-8")
    result = await run.result()
    return {"answer": result.output}


async def cmd_approve(args: argparse.Namespace) -> dict[str, Any]:
    from kimi_agent.durable import launch

    durable = durable_agent(args)
    launch(args.db, executor_id=args.executor)
    await durable.approve(args.workflow, approved=args.approve)
    return {"approved": args.approve}


async def cmd_queue(args: argparse.Namespace) -> dict[str, Any]:
    from dbos import DBOS

    from kimi_agent.durable import RunQueue, launch

    queue = RunQueue("durable-test-runs", concurrency=5, poll_interval=0.1)
    durable = durable_agent(args, queue=queue)
    launch(args.db, executor_id=args.executor)
    await queue.register()
    ids = [f"q-{i}" for i in range(args.runs)]
    if args.enqueue:
        limiter = anyio.CapacityLimiter(20)

        async def enqueue(i: int, workflow_id: str) -> None:
            async with limiter:
                await durable.start(f"会话 c{i}：排队", deps={"effects": args.effects},
                                    workflow_id=workflow_id)

        async with anyio.create_task_group() as group:
            for i, workflow_id in enumerate(ids):
                group.start_soon(enqueue, i, workflow_id)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        done = await DBOS.list_workflows_async(workflow_ids=ids, status="SUCCESS",
                                               load_input=False, load_output=False)
        if len(done) == len(ids):
            break
        await anyio.sleep(0.2)
    else:
        raise RuntimeError("the queue was not worked off in time")
    mine = [w for w in done if w.executor_id == args.executor]
    return {"executed": len(mine)}


COMMANDS = {"run": cmd_run, "refund-start": cmd_refund_start, "approve": cmd_approve,
            "queue": cmd_queue}


def zygote() -> int:
    """`zygote`: import everything once, then fork a worker per line of stdin (its argv as
    a JSON list, then its log file); print each child's pid. Killing a child with SIGKILL
    then costs the test no interpreter start-up and no imports (30 restarts stay cheap).
    Children are reaped automatically; a child writes its `--out` only when it finishes."""
    import os
    import signal

    import kimi_agent.durable._agent
    import kimi_agent.durable._workflow  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        argv, log = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = 1
            try:
                code = main(argv)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["zygote"]:
        return zygote()
    parser = argparse.ArgumentParser(prog="python -m tests.durable_worker")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--effects", default="")
    parser.add_argument("--sessions", default="", help="a SQLite session store file")
    parser.add_argument("--out", default="")
    parser.add_argument("--result", default="")
    parser.add_argument("--executor", default="worker")
    parser.add_argument("--convs", type=int, default=1)
    parser.add_argument("--runs", type=int, default=0)
    parser.add_argument("--enqueue", action="store_true")
    parser.add_argument("--block", default="")
    parser.add_argument("--ready", default="")
    parser.add_argument("--workflow", default="")
    parser.add_argument("--approve", action="append", default=[])
    args = parser.parse_args(argv)
    BLOCK_ENV.update(block=args.block, ready=args.ready)
    from kimi_agent.durable import shutdown

    try:
        outcome = anyio.run(COMMANDS[args.command], args)
    finally:
        shutdown()
    target = args.result or args.out
    Path(target).write_text(json.dumps(outcome, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
