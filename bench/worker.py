"""One measured run of one target in one scenario, in a process of its own.

`python -m bench.worker --target httpx2 --scenario c200 --base-url … --result-file out.json`

The runner starts one worker per target, mode and scenario (and repeat), so that imports,
caches and heap growth never mix between targets. A worker imports its target, opens it,
warms it up, then measures:

- `load`: `concurrency` loops run conversations back to back; after `warmup` conversations a
  window of at least `min_seconds` is measured (see `Window`): CPU = `getrusage(RUSAGE_SELF)`
  user+sys of this process over the window, wall time, per-conversation latency;
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
import importlib
import json
import math
import os
import resource
import signal
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._proc import die_with_parent, parse_cpus, pin_to
from bench.phases import PHASES
from bench.targets import TARGETS_BY_NAME, ConversationRunner, Unsupported, load_runner
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


class Window:
    """The measured window of a load run, inside continuous load at full concurrency.

    The `concurrency` loops never pause. The window opens when the warm-up's conversations have
    completed and closes, once it has lasted `min_seconds`, on a completion count that is a
    multiple of `concurrency` (or at `max_conversations`, or at the hard `max_seconds`). CPU and
    wall time are read at those two instants, so neither the ramp-up nor the drain — where
    fewer than `concurrency` conversations are in flight — is in the figures. Closing on whole
    multiples matters: N conversations started together on a CPU-bound client tend to finish
    together, wave after wave, and a window cut inside a wave would count the CPU of a wave
    without its completions.
    """

    def __init__(
        self, warmup: int, concurrency: int, max_conversations: int, min_seconds: float,
        max_seconds: float,
    ) -> None:
        self.warmup = warmup
        self.concurrency = max(1, concurrency)
        self.max_conversations = max_conversations
        self.min_seconds = min_seconds
        self.max_seconds = max(max_seconds, min_seconds)
        self.state = "warmup"
        self.outside = Tally()  # completed before or after the window: verified, not timed
        self.inside = Tally()
        self.closed = asyncio.Event()
        self.cut_by_time = False
        self.cpu_s = math.nan
        self.wall_s = math.nan
        self._t0 = 0.0
        self._ru0: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def open(self) -> None:
        self.state = "measuring"
        self._ru0 = resource.getrusage(resource.RUSAGE_SELF)
        self._t0 = time.perf_counter()
        self._timer = asyncio.get_running_loop().call_later(self.max_seconds, self._time_up)

    def _time_up(self) -> None:
        self.cut_by_time = self.state == "measuring"
        self.close()

    def close(self) -> None:
        if self.state == "measuring":
            self.wall_s = time.perf_counter() - self._t0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu_s = (ru1.ru_utime - self._ru0.ru_utime) + (ru1.ru_stime - self._ru0.ru_stime)
            if self._timer is not None:
                self._timer.cancel()
        self.state = "done"
        self.closed.set()

    def tally(self) -> Tally:
        return self.inside if self.state == "measuring" else self.outside

    def after_conversation(self) -> None:
        if self.state == "warmup" and self.outside.completed >= self.warmup:
            self.open()
        elif self.state == "measuring":
            done = self.inside.completed
            if done >= self.max_conversations or (
                done % self.concurrency == 0
                and time.perf_counter() - self._t0 >= self.min_seconds
            ):
                self.close()
        failures = sum(t.completed - t.verified for t in (self.inside, self.outside))
        if failures > MAX_ERRORS:
            self.close()


async def load_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    GATE.wait = args.tool_wait
    warmup = args.warmup if args.warmup >= 0 else args.concurrency
    window = Window(
        warmup, args.concurrency, args.conversations, args.min_seconds, args.max_seconds
    )
    numbers = iter(range(warmup + args.conversations + args.concurrency * 4 + 1000))

    async def loop() -> None:
        for i in numbers:
            base = f"m{i}"
            start = time.perf_counter()
            try:
                output = await runner.run(prompt_for(base))
            except Exception as exc:  # reported, not fatal
                window.tally().fail(exc)
            else:
                window.tally().record(output, base, time.perf_counter() - start)
            window.after_conversation()
            if window.state == "done":
                return
        window.close()  # out of conversation numbers (bounded): end the run either way

    if warmup == 0:
        window.open()
    tasks = [asyncio.create_task(loop()) for _ in range(max(1, args.concurrency))]
    try:
        async with asyncio.timeout(args.max_seconds * 2 + DRAIN_GRACE_S):
            await window.closed.wait()
    finally:
        for task in tasks:  # the drain is not measured: stop what is still in flight
            task.cancel()
        await asyncio.wait(tasks, timeout=DRAIN_GRACE_S)
    inside, outside = window.inside, window.outside
    ordered = sorted(inside.latencies)
    done = max(1, inside.completed)
    cpu, wall = window.cpu_s, window.wall_s
    return {
        "completed": inside.completed,
        "verified": inside.verified,
        "warmup_verified": outside.verified,
        "warmup_completed": outside.completed,
        "errors": outside.errors + inside.errors,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_ms_per_conv": cpu * 1000 / done,
        "conv_per_s": inside.completed / wall if wall > 0 else math.nan,
        "cpu_share": cpu / wall if wall > 0 else math.nan,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else math.nan,
        "window_cut_by_time": window.cut_by_time,
    }


HOLD_BATCH = 10


def per_conversation(points: list[tuple[int, float]]) -> float:
    """Memory per held conversation from (conversations held, bytes) points, in KB.

    The slope from the first batch to the last: what one more conversation in flight costs,
    without the one-off costs of the first batch (a new connection, a cache filled on first
    use). With a single batch, the growth from the empty point instead.
    """
    if len(points) >= 3:
        (n0, v0), (n1, v1) = points[1], points[-1]
    elif len(points) == 2:
        (n0, v0), (n1, v1) = points
    else:
        return math.nan
    return (v1 - v0) / (n1 - n0) / 1024 if n1 > n0 else math.nan


async def hold(
    runner: ConversationRunner, n: int, prefix: str, max_seconds: float,
    measure: Callable[[], float],
) -> tuple[list[tuple[int, float]], Tally]:
    """Put `n` conversations in flight with their tools blocked, measuring as they pile up.

    They are started `HOLD_BATCH` at a time, each batch once the previous one is parked in its
    tools, and `measure()` is read (after `gc.collect()`) before the first batch and after
    every batch. So what is measured is the memory the held conversations keep — not the
    transient peak of parsing `n` responses at once (which RSS would keep as allocator
    high-water) nor a connection pool grown to `n` connections.
    """
    tally = Tally()
    GATE.entered = 0
    GATE.event = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    gc.collect()
    points: list[tuple[int, float]] = [(0, measure())]
    try:
        deadline = time.perf_counter() + max_seconds
        for start in range(0, n, HOLD_BATCH):
            count = min(HOLD_BATCH, n - start)
            tasks += [
                asyncio.create_task(one(runner, f"{prefix}{i}", tally))
                for i in range(start, start + count)
            ]
            target = len(tasks) * CALLS_PER_CONVERSATION
            while GATE.entered < target and time.perf_counter() < deadline:
                if all(task.done() for task in tasks):
                    break
                await asyncio.sleep(0.002)
            if GATE.entered < target:
                tally.notes.append(
                    f"only {GATE.entered} of {target} tool calls got in flight"
                    f" within {max_seconds:g} s"
                )
                points = []
                break
            gc.collect()
            points.append((len(tasks), measure()))
    finally:
        GATE.event.set()
        GATE.event = None
        async with asyncio.timeout(DRAIN_GRACE_S):
            await asyncio.gather(*tasks, return_exceptions=True)
    return points, tally


async def memory_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    """Memory per held conversation: RSS with `n` held, then Python heap with `heap_n` held.

    The RSS pass comes first, right after a small warm-up, so the heap has not yet been grown
    by an earlier wave of the same size (freed arenas would hide the growth). tracemalloc slows
    a framework 4-20×, so its pass holds fewer conversations.
    """
    n = args.conversations
    heap_n = max(1, min(n, args.heap_conversations))
    GATE.wait = 0.0
    warm = await drive(runner, args.warmup if args.warmup >= 0 else 10, 10, "w", args.max_seconds)
    rss_points, tally_rss = await hold(
        runner, n, "r", args.max_seconds, lambda: float(current_rss_bytes())
    )
    gc.collect()
    tracemalloc.start()
    try:
        heap_points, tally_heap = await hold(
            runner, heap_n, "h", args.max_seconds,
            lambda: float(tracemalloc.get_traced_memory()[0]),
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
        "rss_kb_per_conv": per_conversation(rss_points),
        "heap_kb_per_conv": per_conversation(heap_points),
        "rss_points": rss_points,
        "heap_points": heap_points,
    }


async def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    spec = TARGETS_BY_NAME[args.target]
    t0 = time.perf_counter()
    if args.variant:
        spec = dataclasses.replace(spec, variant=args.variant)
    runner = load_runner(spec, args.base_url, args.mode == "stream")
    import_s = time.perf_counter() - t0
    try:
        await runner.start()
    except Unsupported as exc:  # a feature this target does not have: "not available"
        return {"unsupported": str(exc), "completed": 0, "verified": 0, "errors": []}
    try:
        if args.kind == "memory":
            result = await memory_phase(runner, args)
        elif args.kind in PHASES:
            result = await PHASES[args.kind](runner, args)
        else:
            result = await load_phase(runner, args)
        result["http_client"] = runner.http_client()
    finally:
        await runner.close()
    result["setup_s"] = import_s
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def job_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--target", required=True, choices=sorted(TARGETS_BY_NAME))
    parser.add_argument("--variant", default="", help="override the target's variant")
    parser.add_argument("--mode", choices=("plain", "stream"), default="plain")
    parser.add_argument("--kind", choices=("load", "memory", *PHASES), default="load")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=-1, help="-1: one wave (= concurrency)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="measured window")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="hard cap per phase")
    parser.add_argument("--heap-conversations", type=int, default=50)
    parser.add_argument("--tool-wait", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=10, help="history/early: measured runs")
    parser.add_argument("--warmup-runs", type=int, default=2, help="history: unmeasured runs")
    parser.add_argument("--stored", type=int, default=10, help="history: stored messages")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--history-source", choices=("stored", "sent"), default="stored")
    parser.add_argument("--history-file", default="", help="history: a captured request")
    parser.add_argument("--capture-out", default="", help="history: save the sent request")
    parser.add_argument("--tag", default="x", help="names this run's probes at the gateway")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="early: tool-call gap")
    parser.add_argument("--turns", type=int, default=200, help="cache: conversation turns")
    parser.add_argument("--result-file", required=True)
    parser.add_argument("--cpus", default="")
    parser.add_argument("--max-lifetime", type=float, default=300.0)
    return parser


def run_job(args: argparse.Namespace) -> int:
    die_with_parent(args.max_lifetime)
    pin_to(parse_cpus(args.cpus))
    try:
        result = asyncio.run(run_worker(args))
        result["ok"] = True
    except Exception as exc:
        result = {"ok": False, "errors": [traceback.format_exc()[-2000:]], "exception": repr(exc)}
    Path(args.result_file).write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["ok"] else 1


MAX_ZYGOTE_JOBS = 10_000


def zygote(argv: list[str]) -> int:
    """Import one target once, then fork a fresh child for every job read from stdin.

    Each job still runs in a process of its own that has never run a conversation before (the
    zygote only imports), so figures do not mix between scenarios, but the framework's import
    — over a second for the peers — is paid once per target instead of once per run. One JSON
    list of job arguments per line in; `DONE <exit code>` per job out.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.worker --zygote")
    parser.add_argument("--target", required=True, choices=sorted(TARGETS_BY_NAME))
    parser.add_argument("--max-lifetime", type=float, default=1800.0)
    args = parser.parse_args(argv)
    die_with_parent(args.max_lifetime)
    importlib.import_module(TARGETS_BY_NAME[args.target].module)
    gc.collect()
    print("READY", flush=True)
    for _, line in zip(range(MAX_ZYGOTE_JOBS), sys.stdin, strict=False):
        job = job_parser().parse_args(json.loads(line))
        pid = os.fork()
        if pid == 0:  # the child: run one job, never return into the zygote's loop
            code = 2
            try:
                signal.alarm(0)
                code = run_job(job)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"DONE {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        return zygote(argv[1:])
    return run_job(job_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
