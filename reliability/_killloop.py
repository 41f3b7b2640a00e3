"""`python -m reliability killloop`: `kill -9` a process while it writes sessions, over and
over, and check every session after each kill.

Each round starts a worker that runs `--conversations` conversations at once on the same
SQLite file (the sessions of earlier rounds, so each worker also continues histories an
earlier kill interrupted), waits until it has committed a run, lets it work a random moment
more and kills it with SIGKILL. Then every session must be valid, with every prompt whose run
the worker had journalled as completed still stored. At the end one more run on every
session must be accepted by the strict simulator.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from kimi_agent import Agent
from kimi_agent.sessions import SQLiteStore
from kimi_agent.testing import GatewaySimulator, Latency

from ._kit import fast_retry, make_client
from ._runs import one_run
from ._soak import _bounded_records
from ._verify import verify
from ._world import TOOLS, Journal, prompt_for, read_journals, responder

__all__ = ["add_arguments", "kill_worker", "killloop"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dir", default=None, help="where the database and journals go")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def killloop(args: argparse.Namespace) -> int:
    folder = Path(args.dir or tempfile.mkdtemp(prefix="kimi-killloop-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "killloop.db"
    rng = random.Random(args.seed)
    sim = GatewaySimulator(responder=responder, seed=args.seed,
                           latency=Latency(first_token=0.01, tokens_per_second=5000))
    started = time.monotonic()
    rounds: list[dict[str, Any]] = []
    with sim.serve_in_thread() as url, _bounded_records(sim):
        for k in range(args.kills):
            rounds.append(_round(k, url, sim.api_key, db, folder, args, rng))
        records = read_journals(folder)
        final = anyio.run(lambda: verify(db, records, accept_url=url, api_key=sim.api_key))
    bad = [r for r in rounds if r["corrupted"] or r["lost"] or not r["killed"]]
    summary = {
        "kills": sum(r["killed"] for r in rounds), "rounds": len(rounds),
        "seconds": round(time.monotonic() - started, 1),
        "runs_completed": sum(1 for r in records if r.get("o") == "completed"),
        "rounds_with_invalid_sessions": len(bad), "bad_rounds": bad[:10],
        "final": final.as_dict(), "folder": str(folder),
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        f = summary["final"]
        print(f"killloop: {summary['kills']} kills in {summary['seconds']} s, "
              f"{summary['runs_completed']} runs completed between them")
        print(f"  rounds with an invalid session or a lost message: "
              f"{summary['rounds_with_invalid_sessions']}")
        print(f"  at the end: {f['sessions']} sessions, {f['messages']} messages, lost "
              f"{f['lost']}, corrupted {f['corrupted']}, next run not accepted "
              f"{f['not_accepted']}")
        for problem in [*f["problems"], *(str(b) for b in bad[:5])]:
            print(f"    {problem}")
    good = not bad and final.lost == 0 and final.corrupted == 0 and final.not_accepted == 0
    return 0 if good else 1


def _round(k: int, url: str, key: str, db: Path, folder: Path, args: argparse.Namespace,
           rng: random.Random) -> dict[str, Any]:
    ready = folder / f"ready-{k}"
    command = [sys.executable, "-m", "reliability", "kill-worker", "--round", str(k),
               "--url", url, "--key", key, "--db", str(db), "--dir", str(folder),
               "--conversations", str(args.conversations), "--seed", str(args.seed * 1000 + k)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                               cwd=Path(__file__).resolve().parent.parent,
                               env={**os.environ, "KIMI_KILL_READY": str(ready)})
    killed = False
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed = True
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    verdict = anyio.run(lambda: verify(db, read_journals(folder)))
    return {"round": k, "killed": killed, "corrupted": verdict.corrupted, "lost": verdict.lost,
            "sessions": verdict.sessions, "problems": verdict.problems[:3]}


def kill_worker(args: argparse.Namespace) -> int:
    anyio.run(_kill_worker, args)
    return 0


async def _kill_worker(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    journal = Journal(Path(args.dir) / f"journal-k{args.round}.jsonl")
    ready = Path(os.environ["KIMI_KILL_READY"])
    async with SQLiteStore(args.db) as store, \
            make_client(args.url, args.key, timeout=10.0, retry=fast_retry(2)) as client:
        agent = Agent(tools=TOOLS, client=client, tool_timeout=0.2, run_timeout=30,
                      fallback_cooldown=0)

        async def converse(session_id: str) -> None:
            session = store.session(session_id)
            for n in range(1_000_000):
                prompt = prompt_for(session_id, args.round * 100_000 + n, rng, 0.0, [])
                outcome, detail = await one_run(agent, session, prompt,
                                                streamed=rng.random() < 0.5, cancel_after=None)
                journal.write(w=args.round, s=session_id, p=prompt, o=outcome, e=detail)
                if not ready.exists():
                    ready.write_text(str(os.getpid()), encoding="utf-8")

        async with anyio.create_task_group() as group:
            for c in range(args.conversations):
                group.start_soon(converse, f"c{c}")
