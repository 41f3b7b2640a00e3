"""A replica process of the scaling-out tests: runs the session tests' agent on a shared store.

`python -m tests.replica_worker COMMAND --store URL ...` (from the repository root). The store
URL is what `kimi-agent sessions copy` takes (`sqlite:///file.db`, `postgresql://…`,
`redis://…?prefix=p:`). The gateway simulator runs in the test process (`--url` / `--key`);
the tools and the stateless responder are `tests.session_worker`'s. Each command prints one
JSON line for the test to check.

- chat: `--runs` runs on each of `--sessions` (concurrently across sessions); each prompt
  carries the session id and `--tag` (this replica), so a run that interleaves with another
  shows in the history. A run that meets `ConversationBusyError` is reported as busy.
  `--limiter redis|postgres` with `--limiter-url`, `--limit`: the gateway calls share that
  limiter (`GatewayClient(concurrency=limiter)`).
- block: a run whose second step calls `slow_lookup` (writes `--ready` and sleeps); the test
  kills this process mid-run.
- ask-refund: a run that stops at the `refund` approval; reports the pending call ids.
- resume: `agent.resume(...)` with `--approve ID`.

The test side is `tests.session_worker`'s `Worker` and `wait_for_file`, with `started` here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from kimi_agent import GatewayClient, RetryPolicy
from kimi_agent.cli._sessions import open_store
from kimi_agent.errors import ConversationBusyError
from kimi_agent.scale import PostgresLimiter, RedisLimiter
from tests.session_worker import READY_ENV, SLOW, Worker, agent_for

ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def client_for(args: argparse.Namespace) -> AsyncIterator[GatewayClient]:
    retry = RetryPolicy(max_retries=5)
    if not args.limiter:
        async with GatewayClient(args.url, args.key, retry=retry) as client:
            yield client
        return
    kind = RedisLimiter if args.limiter == "redis" else PostgresLimiter
    async with kind(args.limiter_url, "bytespike-account", args.limit) as limiter, \
            GatewayClient(args.url, args.key, retry=retry, concurrency=limiter) as client:
        yield client


async def chat(args: argparse.Namespace) -> dict[str, Any]:
    done: dict[str, int] = {}
    busy: list[str] = []
    store = open_store(args.store)
    try:
        async with client_for(args) as client:
            agent = agent_for(client)
            agent.busy_timeout = args.busy_timeout

            async def converse(session_id: str) -> None:
                session = store.session(session_id)
                for i in range(args.runs):
                    prompt = (f"第{i}问：订单 {session_id}-{args.tag}{i} 到哪了？"
                              f"（会话 {session_id}，副本 {args.tag}）")
                    try:
                        result = await agent.run(prompt, session=session)
                    except ConversationBusyError:
                        busy.append(session_id)
                        continue
                    assert result.status == "completed", result.status
                    done[session_id] = done.get(session_id, 0) + 1

            async with anyio.create_task_group() as group:
                for session_id in args.sessions.split(","):
                    group.start_soon(converse, session_id)
    finally:
        await store.aclose()
    return {"pid": os.getpid(), "done": done, "busy": busy}


async def block(args: argparse.Namespace) -> dict[str, Any]:
    os.environ[READY_ENV] = args.ready
    store = open_store(args.store)
    async with GatewayClient(args.url, args.key) as client:
        result = await agent_for(client).run(f"{SLOW}订单 {args.order} 的仓库记录",
                                             session=store.session(args.session))
    return {"pid": os.getpid(), "status": result.status}  # never reached: killed first


async def ask_refund(args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(args.store)
    try:
        async with GatewayClient(args.url, args.key) as client:
            result = await agent_for(client).run(f"我要退款，订单 {args.order}",
                                                 session=store.session(args.session))
    finally:
        await store.aclose()
    return {"pid": os.getpid(), "status": result.status,
            "pending": [p.call_id for p in result.pending_approvals]}


async def resume(args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(args.store)
    try:
        async with GatewayClient(args.url, args.key) as client:
            result = await agent_for(client).resume(store.session(args.session),
                                                    approved=args.approve)
    finally:
        await store.aclose()
    return {"pid": os.getpid(), "status": result.status, "output": result.output,
            "calls": [[c.call_id, c.name, c.status, c.result] for s in result.steps
                      for c in s.tool_calls]}


COMMANDS = {"chat": chat, "block": block, "ask-refund": ask_refund, "resume": resume}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="replica_worker")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--store", required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--session", default="")
    parser.add_argument("--sessions", default="")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--tag", default="X")
    parser.add_argument("--busy-timeout", dest="busy_timeout", type=float, default=120.0)
    parser.add_argument("--ready", default="")
    parser.add_argument("--order", default="A1024")
    parser.add_argument("--approve", action="append", default=[])
    parser.add_argument("--limiter", choices=["redis", "postgres"], default=None)
    parser.add_argument("--limiter-url", dest="limiter_url", default="")
    parser.add_argument("--limit", type=int, default=5)
    args = parser.parse_args(argv)
    report = anyio.run(COMMANDS[args.command], args)
    print(json.dumps(report, ensure_ascii=False), flush=True)


@asynccontextmanager
async def started(command: str, store: str, *args: str, logs: Path) -> AsyncIterator[Worker]:
    """Start `python -m tests.replica_worker COMMAND`; it is killed and reaped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{command}-{len(list(logs.iterdir()))}"
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "tests.replica_worker", command, "--store", store, *args],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        try:
            yield Worker(process, out, err)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()


async def run_replica(command: str, store: str, *args: str, logs: Path,
                      timeout: float = 300) -> dict[str, Any]:
    """Run a replica to the end (bounded by `timeout`) and return its JSON report."""
    async with started(command, store, *args, logs=logs) as worker:
        with anyio.fail_after(timeout):
            await worker.process.wait()
    return worker.report()


if __name__ == "__main__":
    main(sys.argv[1:])
