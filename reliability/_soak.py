"""`python -m reliability soak`: processes x concurrent conversations on one SQLite file, with
faults at a rate, then every session checked.

The parent serves the gateway simulator (its model: `_world.responder`) behind a
`FaultProxy`, both in background threads; the simulator injects its faults at a rate (rate
limits, overload, 503s, an empty quota, streams dropped or cut, slow replies) and the proxy
the network's (resets, connections closed before an answer, answers cut mid-body or inside
their headers). Each worker process runs `--conversations` conversations at once for
`--seconds`, on its own sessions and on a few shared by every worker; prompts ask for faulty
tools at `--tool-rate` and runs are cancelled at random points at `--cancel-rate`. Workers
journal every run's outcome; afterwards the parent checks every session (`_verify`) and
prints runs, faults, typed and untyped errors, lost and corrupted messages, and the memory
and open files of each process before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from kimi_agent import Agent
from kimi_agent.sessions import SQLiteStore
from kimi_agent.testing import GatewaySimulator

from ._kit import fast_retry, make_client
from ._proxy import FaultProxy
from ._runs import one_run
from ._verify import verify
from ._world import FAULTY_TOOLS, TOOLS, Journal, proc_figures, prompt_for, read_journals, responder

__all__ = ["add_arguments", "soak", "soak_worker"]

SIM_FAULTS: list[tuple[str, dict[str, Any], float]] = [
    # name, inject() arguments, share of the fault rate
    ("429 rate limit", {"kind": "rate_limit"}, 0.2),
    ("429 overloaded", {"kind": "overloaded", "retry_after": 0}, 0.1),
    ("503", {"status": 503}, 0.2),
    ("429 quota", {"kind": "quota"}, 0.05),
    ("stream dropped", {"kind": "drop_mid_stream"}, 0.15),
    ("cut before [DONE]", {"kind": "cut_before_done"}, 0.15),
    ("slow reply", {"kind": "slow", "delay": 0.2}, 0.15),
]
NET_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("connection reset", {"kind": "reset"}),
    ("closed before headers", {"kind": "close"}),
    ("cut in headers", {"kind": "cut_headers"}),
    ("cut mid-body", {"kind": "cut_body", "at": 0.5}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--procs", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=12,
                        help="concurrent conversations per process")
    parser.add_argument("--shared", type=int, default=2,
                        help="sessions every process writes to as well")
    parser.add_argument("--fault-rate", type=float, default=0.15,
                        help="share of model requests the simulator fails")
    parser.add_argument("--net-fault-rate", type=float, default=0.03,
                        help="share of connections the proxy breaks")
    parser.add_argument("--tool-rate", type=float, default=0.15,
                        help="share of prompts that call a faulty tool")
    parser.add_argument("--tool-faults", default=",".join(FAULTY_TOOLS),
                        help="the faulty tools prompts may call, comma-separated")
    parser.add_argument("--cancel-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dir", default=None, help="where the database and journals go")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


# --------------------------------------------------------------------------- the parent


def soak(args: argparse.Namespace) -> int:
    folder = Path(args.dir or tempfile.mkdtemp(prefix="kimi-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "soak.db"
    sim = GatewaySimulator(responder=responder, seed=args.seed)
    sim_faults = [(name, sim.inject(None, rate=min(1.0, args.fault_rate * share), **options))
                  for name, options, share in SIM_FAULTS if args.fault_rate > 0]
    before = proc_figures()
    started = time.monotonic()
    with sim.serve_in_thread() as sim_url, _bounded_records(sim), \
            proxy_in_thread(FaultProxy(sim_url, seed=args.seed), args.net_fault_rate) as (
                url, proxy_faults):
        workers = [_start_worker(args, i, url, sim.api_key, db, folder)
                   for i in range(args.procs)]
        reports = [_finish_worker(p, args.seconds + 180) for p in workers]
        elapsed = time.monotonic() - started
        sim.clear_faults()
        records = read_journals(folder)
        verdict = anyio.run(lambda: verify(db, records, accept_url=sim_url,
                                           api_key=sim.api_key))
    after = proc_figures()
    summary = _summary(args, records, reports, verdict.as_dict(), elapsed, before, after,
                       {name: f.fired for name, f in sim_faults},
                       {name: f.fired for name, f in proxy_faults}, folder)
    _print(summary, as_json=args.json)
    good = (summary["untyped_errors"] == 0 and verdict.lost == 0 and verdict.corrupted == 0
            and verdict.not_accepted == 0 and all(r.get("ok") for r in reports))
    return 0 if good else 1


@contextlib.contextmanager
def _bounded_records(sim: GatewaySimulator) -> Iterator[None]:
    """Forget the simulator's request records every second (a soak does not read them)."""
    stop = threading.Event()

    def forget() -> None:
        while not stop.wait(1.0):
            sim.requests.clear()
            sim.errors.clear()

    thread = threading.Thread(target=forget, name="forget-records", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def proxy_in_thread(proxy: FaultProxy, rate: float
                    ) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """Serve `proxy` from its own event loop in a thread, its faults at `rate` overall."""
    faults = [(name, proxy.inject(options.pop("kind"), rate=rate / len(NET_FAULTS), **options))
              for name, options in ((n, dict(o)) for n, o in NET_FAULTS) if rate > 0]
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = stop = asyncio.Event()
        async with proxy.serve() as url:
            box["url"] = url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="fault-proxy",
                              daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the fault proxy did not start")
    try:
        yield box["url"], faults
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


def _start_worker(args: argparse.Namespace, index: int, url: str, key: str, db: Path,
                  folder: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "reliability", "soak-worker", "--worker", str(index),
               "--url", url, "--key", key, "--db", str(db), "--dir", str(folder),
               "--seconds", str(args.seconds), "--conversations", str(args.conversations),
               "--shared", str(args.shared), "--tool-rate", str(args.tool_rate),
               "--tool-faults", args.tool_faults, "--cancel-rate", str(args.cancel_rate),
               "--seed", str(args.seed * 1000 + index)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)


def _finish_worker(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return {"ok": False, "error": "the worker overran its time and was killed"}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        return {"ok": False, "error": f"the worker exited with {process.returncode}"}
    report: dict[str, Any] = json.loads(lines[-1])
    report["ok"] = True
    return report


def _summary(args: argparse.Namespace, records: list[dict[str, Any]],
             reports: list[dict[str, Any]], verdict: dict[str, Any], elapsed: float,
             before: dict[str, float], after: dict[str, float], sim_faults: dict[str, int],
             net_faults: dict[str, int], folder: Path) -> dict[str, Any]:
    outcomes = Counter(r["o"] for r in records)
    typed = Counter(r["e"] for r in records if r["o"] == "typed")
    untyped = Counter(r["e"] for r in records if r["o"] == "untyped")
    tool_faults = sum(1 for r in records if "[工具:" in r["p"] or "[重复]" in r["p"])
    return {
        "seconds": round(elapsed, 1), "processes": args.procs,
        "conversations": args.procs * args.conversations + args.shared,
        "runs": len(records), "completed": outcomes["completed"],
        "cancelled": outcomes["cancelled"], "typed_errors": sum(typed.values()),
        "untyped_errors": sum(untyped.values()), "typed": dict(typed.most_common()),
        "untyped": dict(untyped.most_common(10)),
        "faults": {"simulator": sim_faults, "network": net_faults,
                   "tool_prompts": tool_faults, "cancellations": outcomes["cancelled"]},
        "total_faults": sum(sim_faults.values()) + sum(net_faults.values()) + tool_faults
        + outcomes["cancelled"],
        "verdict": verdict,
        "workers": [{k: r.get(k) for k in ("worker", "before", "after", "error")}
                    for r in reports],
        "parent": {"before": before, "after": after}, "folder": str(folder),
    }


def _print(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    v = summary["verdict"]
    print(f"soak: {summary['runs']} runs in {summary['seconds']} s, {summary['processes']} "
          f"processes, {summary['conversations']} conversations")
    print(f"  completed {summary['completed']}, cancelled {summary['cancelled']}, typed errors "
          f"{summary['typed_errors']}, untyped errors {summary['untyped_errors']}")
    faults = json.dumps(summary["faults"], ensure_ascii=False)
    print(f"  faults {summary['total_faults']}: {faults}")
    print(f"  typed: {json.dumps(summary['typed'], ensure_ascii=False)}")
    if summary["untyped"]:
        print(f"  UNTYPED: {json.dumps(summary['untyped'], ensure_ascii=False)}")
    print(f"  sessions {v['sessions']}, messages {v['messages']}: lost {v['lost']}, corrupted "
          f"{v['corrupted']}, next run not accepted {v['not_accepted']}")
    for problem in v["problems"]:
        print(f"    {problem}")
    for worker in summary["workers"]:
        print(f"  worker {worker.get('worker')}: before {worker.get('before')} after "
              f"{worker.get('after')} {worker.get('error') or ''}")
    parent = summary["parent"]
    print(f"  parent (simulator, proxy): before {parent['before']} after {parent['after']}")


# --------------------------------------------------------------------------- a worker


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    for name in ("--url", "--key", "--db", "--dir", "--tool-faults"):
        parser.add_argument(name, required=True)
    parser.add_argument("--worker", type=int, required=True)
    for name in ("--seconds", "--tool-rate", "--cancel-rate"):
        parser.add_argument(name, type=float, required=True)
    for name in ("--conversations", "--shared", "--seed"):
        parser.add_argument(name, type=int, required=True)


def soak_worker(args: argparse.Namespace) -> int:
    report = anyio.run(_worker, args)
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 0


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    journal = Journal(Path(args.dir) / f"journal-{args.worker}.jsonl")
    faults = [name for name in args.tool_faults.split(",") if name]
    async with SQLiteStore(args.db) as store, \
            make_client(args.url, args.key, timeout=5.0, retry=fast_retry(2)) as client:
        agent = Agent(instructions="你是网店客服，回答简洁。", tools=TOOLS, client=client,
                      tool_timeout=0.2, tool_retries=2, max_steps=8, run_timeout=30,
                      busy_timeout=20, fallback_cooldown=0)
        before = proc_figures()
        deadline = time.monotonic() + args.seconds

        async def converse(session_id: str) -> None:
            session = store.session(session_id)
            n = 0
            while time.monotonic() < deadline:
                prompt = prompt_for(session_id, n, rng, args.tool_rate, faults,
                                    writer=f"w{args.worker}")
                n += 1
                cancel = rng.uniform(0.0, 0.3) if rng.random() < args.cancel_rate else None
                outcome, detail = await one_run(agent, session, prompt,
                                                streamed=rng.random() < 0.5, cancel_after=cancel)
                journal.write(w=args.worker, s=session_id, p=prompt, o=outcome, e=detail)

        async with anyio.create_task_group() as group:
            for c in range(args.conversations):
                group.start_soon(converse, f"w{args.worker}-c{c}")
            for s in range(args.shared):
                group.start_soon(converse, f"shared-{s}")
        after = proc_figures()
    journal.close()
    return {"worker": args.worker, "pid": os.getpid(), "before": before, "after": after}
