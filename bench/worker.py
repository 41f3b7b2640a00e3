"""One measured run of one target in one scenario, in a process of its own.

`python -m bench.worker --target httpx2 --scenario c200 --base-url … --result-file out.json`

The runner starts one worker per target, mode and scenario (and repeat), so that imports,
caches and heap growth never mix between targets. A worker imports its target, opens it,
warms it up, then measures:

- `load`: `conversations` conversations driven by `concurrency` concurrent loops (stopping
  early at `max_seconds`); CPU = `getrusage(RUSAGE_SELF)` user+sys of this process over the
  measured phase, wall time, per-conversation latency;
- `memory`: `n` conversations held in flight (their tools blocked on an event) — the growth
  of RSS, then in a second pass the growth of the Python heap under tracemalloc, each divided
  by `n`.

Every final output is checked with `bench.work.verify`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import math
import os
import resource
import sys
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._proc import die_with_parent, parse_cpus, pin_to
from bench.targets import TARGETS_BY_NAME, ConversationRunner, load_runner
from bench.work import CALLS_PER_CONVERSATION, GATE, prompt_for, verify

MAX_ERRORS = 20
DRAIN_GRACE_S = 60.0


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    verified: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def record(self, output: object, base: str, seconds: float) -> None:
        self.completed += 1
        self.latencies.append(seconds)
        if verify(output, base):
            self.verified += 1
        elif len(self.errors) < 3:
            self.errors.append(f"unverified output for {base}: {str(output)[:300]!r}")

    def fail(self, exc: BaseException) -> None:
        self.completed += 1
        if len(self.errors) < 3:
            self.errors.append("".join(traceback.format_exception_only(exc)).strip()[:600])


async def one(runner: ConversationRunner, base: str, tally: Tally) -> None:
    start = time.perf_counter()
    try:
        output = await runner.run(prompt_for(base))
    except Exception as exc:  # a failed conversation is reported, not fatal
        tally.fail(exc)
        return
    tally.record(output, base, time.perf_counter() - start)


async def drive(
    runner: ConversationRunner, n: int, concurrency: int, prefix: str, max_seconds: float
) -> Tally:
    """Run up to `n` conversations, `concurrency` at a time, starting none after `max_seconds`."""
    tally = Tally()
    counter = iter(range(n))
    deadline = time.perf_counter() + max_seconds

    async def loop() -> None:
        for i in counter:
            await one(runner, f"{prefix}{i}", tally)
            failures = tally.completed - tally.verified
            if failures > MAX_ERRORS or time.perf_counter() >= deadline:
                return

    async with asyncio.timeout(max_seconds + DRAIN_GRACE_S):
        await asyncio.gather(*(loop() for _ in range(max(1, min(concurrency, n)))))
    return tally


async def load_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    GATE.wait = args.tool_wait
    warmup = args.warmup if args.warmup >= 0 else min(args.concurrency, args.conversations)
    warm = await drive(runner, warmup, args.concurrency, "w", args.max_seconds)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    tally = await drive(runner, args.conversations, args.concurrency, "m", args.max_seconds)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ordered = sorted(tally.latencies)
    done = max(1, tally.completed)
    return {
        "completed": tally.completed,
        "verified": tally.verified,
        "warmup_verified": warm.verified,
        "warmup_completed": warm.completed,
        "errors": warm.errors + tally.errors,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_ms_per_conv": cpu * 1000 / done,
        "conv_per_s": tally.completed / wall if wall > 0 else math.nan,
        "cpu_share": cpu / wall if wall > 0 else math.nan,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else math.nan,
    }


async def hold(
    runner: ConversationRunner, n: int, prefix: str, max_seconds: float, measure: Any
) -> tuple[float, Tally]:
    """Put `n` conversations in flight with their tools blocked, call `measure()`, release."""
    tally = Tally()
    GATE.entered = 0
    GATE.event = asyncio.Event()
    tasks = [asyncio.create_task(one(runner, f"{prefix}{i}", tally)) for i in range(n)]
    value = math.nan
    try:
        deadline = time.perf_counter() + max_seconds
        while GATE.entered < n * CALLS_PER_CONVERSATION and time.perf_counter() < deadline:
            if all(task.done() for task in tasks):
                break
            await asyncio.sleep(0.005)
        if GATE.entered >= n * CALLS_PER_CONVERSATION:
            gc.collect()
            value = measure()
        else:
            tally.notes.append(
                f"only {GATE.entered} of {n * CALLS_PER_CONVERSATION} tool calls got in flight"
                f" within {max_seconds:g} s"
            )
    finally:
        GATE.event.set()
        GATE.event = None
        async with asyncio.timeout(DRAIN_GRACE_S):
            await asyncio.gather(*tasks, return_exceptions=True)
    return value, tally


async def memory_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    """RSS growth with `n` conversations in flight, then Python-heap growth with `heap_n`.

    The RSS pass comes first, right after a small warm-up, so the heap has not yet been grown
    by an earlier wave of the same size (freed arenas would hide the growth). tracemalloc slows
    a framework 4-20×, so its pass holds fewer conversations.
    """
    n = args.conversations
    heap_n = max(1, min(n, args.heap_conversations))
    GATE.wait = 0.0
    warm = await drive(runner, args.warmup if args.warmup >= 0 else 10, 10, "w", args.max_seconds)
    gc.collect()
    rss_before = current_rss_bytes()
    rss_after, tally_rss = await hold(runner, n, "r", args.max_seconds, current_rss_bytes)
    gc.collect()
    tracemalloc.start()
    try:
        traced_before = tracemalloc.get_traced_memory()[0]
        traced_after, tally_heap = await hold(
            runner, heap_n, "h", args.max_seconds, lambda: tracemalloc.get_traced_memory()[0]
        )
    finally:
        tracemalloc.stop()
    completed = tally_rss.completed + tally_heap.completed
    return {
        "completed": completed,
        "verified": tally_rss.verified + tally_heap.verified,
        "warmup_verified": warm.verified,
        "warmup_completed": warm.completed,
        "errors": warm.errors + tally_rss.errors + tally_heap.errors,
        "notes": tally_rss.notes + tally_heap.notes,
        "in_flight": n,
        "heap_in_flight": heap_n,
        "rss_kb_per_conv": (rss_after - rss_before) / 1024 / n,
        "heap_kb_per_conv": (traced_after - traced_before) / 1024 / heap_n,
        "rss_before_mb": rss_before / 2**20,
    }


async def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    spec = TARGETS_BY_NAME[args.target]
    t0 = time.perf_counter()
    if args.variant:
        spec = dataclasses.replace(spec, variant=args.variant)
    runner = load_runner(spec, args.base_url, args.mode == "stream")
    import_s = time.perf_counter() - t0
    await runner.start()
    try:
        if args.kind == "memory":
            result = await memory_phase(runner, args)
        else:
            result = await load_phase(runner, args)
        result["http_client"] = runner.http_client()
    finally:
        await runner.close()
    result["import_and_setup_s"] = import_s
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--target", required=True, choices=sorted(TARGETS_BY_NAME))
    parser.add_argument("--variant", default="", help="override the target's variant")
    parser.add_argument("--mode", choices=("plain", "stream"), default="plain")
    parser.add_argument("--kind", choices=("load", "memory"), default="load")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=-1, help="-1: one wave (= concurrency)")
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--heap-conversations", type=int, default=50)
    parser.add_argument("--tool-wait", type=float, default=0.0)
    parser.add_argument("--result-file", required=True)
    parser.add_argument("--cpus", default="")
    parser.add_argument("--max-lifetime", type=float, default=300.0)
    args = parser.parse_args(argv)
    die_with_parent(args.max_lifetime)
    pin_to(parse_cpus(args.cpus))
    try:
        result = asyncio.run(run_worker(args))
        result["ok"] = True
    except Exception as exc:
        result = {"ok": False, "errors": [traceback.format_exc()[-2000:]], "exception": repr(exc)}
    Path(args.result_file).write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
