"""The scenarios of issue 14, each a phase of one worker process (see bench.worker).

- `history`: CPU of one run on a session that already holds `stored` messages (or, for the
  hand-written loop, the same request: the messages kimi-agent sent, captured by the gateway);
  runs are sequential and each is timed alone with `time.process_time()` (all threads, so
  SQLite's worker thread counts), the session restored to its stored state between runs,
  outside the timing.
- `burst`: `n` conversations put in flight at once against a slow model (the route gives the
  latency): throughput, latency percentiles, CPU per conversation, failures, and the lag of
  the event loop (a 20 ms ticker's lateness).
- `early`: tool calls streamed some time apart, tools of different lengths: the step latency as
  the gateway sees it (first request in → second request in), against the bound "slowest
  (call complete + tool time)".
- `cache`: one long Chinese conversation, run after run in the same session; the gateway's
  prompt-cache model says how much of each prompt was a byte-identical prefix.
- `connections`: new TCP connections the gateway accepted during 10 conversations in a row,
  after a first one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.history import history, sent_history, trim_to_budget
from bench.targets import ConversationRunner
from bench.work import CALLS_PER_CONVERSATION, GATE, prompt_for, verify

LAG_TICK_S = 0.02
EARLY_WAITS = (1.0, 0.2, 0.6, 0.4)
"""Tool times of the early-start scenario, call by call (0.2-1 s), for calls 250 ms apart."""
EARLY_GAP_MS = 250.0
CACHE_PADDING = (
    "，详细记录：该订单由华东仓发出，经上海转运中心分拣，当前由同城快递员配送；"
    "商品为空气净化器一台，附赠滤网两片，保修一年，发票已开具并发送至预留邮箱。"
) * 3
CACHE_ASK = (
    "你好，我想再确认一下我名下几个订单的情况：物流走到哪里了，发票有没有开，"
    "保修从哪天开始算，赠品有没有一起寄出。麻烦逐个查一下，结果原样告诉我，谢谢。"
)


def probe(base_url: str, path: str) -> Any:
    """GET a `/_…` probe of the bench gateway (a connection of its own, not counted)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


async def aprobe(base_url: str, path: str) -> Any:
    return await asyncio.to_thread(probe, base_url, path)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:600]


# --------------------------------------------------------------------------- history


async def history_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    source = "stored"
    if args.history_file and Path(args.history_file).exists():
        stored = sent_history(Path(args.history_file).read_bytes())
        source = "captured"
    elif args.history_source == "sent":
        stored = trim_to_budget(history(args.stored))
        source = "trimmed by the bench"
    else:
        stored = history(args.stored)
    errors: list[str] = []
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    verified = completed = 0
    with tempfile.TemporaryDirectory(prefix="kimi-bench-db-") as tmp:
        setup = time.perf_counter()
        conversation = await runner.open_conversation(
            stored, store=args.store, path=str(Path(tmp) / "bench.db"), keep_history=False
        )
        setup_s = time.perf_counter() - setup
        try:
            for index in range(args.warmup_runs + args.runs):
                base = f"cap-{args.tag}" if index == 0 else f"h{index}"
                c0, t0 = time.process_time(), time.perf_counter()
                try:
                    output = await runner.run_in(conversation, prompt_for(base))
                except Exception as exc:  # reported, not fatal
                    errors.append(_error(exc))
                    output = None
                c1, t1 = time.process_time(), time.perf_counter()
                await runner.restore(conversation, len(stored))
                if index < args.warmup_runs:
                    continue
                completed += 1
                if verify(output, base):
                    verified += 1
                    cpu_ms.append((c1 - c0) * 1000)
                    wall_ms.append((t1 - t0) * 1000)
                elif len(errors) < 3:
                    errors.append(f"unverified output: {str(output)[:200]!r}")
                if len(errors) > 3:
                    break
        finally:
            await runner.close_conversation(conversation)
    capture = await aprobe(args.base_url, f"/_capture/cap-{args.tag}")
    sent = None
    if isinstance(capture, dict) and isinstance(capture.get("messages"), list):
        sent = len(capture["messages"])
        if args.capture_out:
            Path(args.capture_out).write_text(
                json.dumps(capture, ensure_ascii=False), encoding="utf-8"
            )
    return {
        "completed": completed,
        "verified": verified,
        "warmup_completed": 0,
        "warmup_verified": 0,
        "errors": errors,
        "stored_messages": len(stored),
        "history_source": source,
        "sent_messages": sent,
        "setup_s": setup_s,
        "cpu_ms_per_run": statistics.median(cpu_ms) if cpu_ms else math.nan,
        "cpu_ms_min": min(cpu_ms) if cpu_ms else math.nan,
        "wall_ms_per_run": statistics.median(wall_ms) if wall_ms else math.nan,
        "cpu_ms_samples": [round(c, 3) for c in cpu_ms],
    }


# --------------------------------------------------------------------------- burst


async def lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    """Lateness of a 20 ms ticker: how long a ready callback waits for the loop."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        expected = loop.time() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        samples.append(max(0.0, loop.time() - expected))


async def burst_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    GATE.wait = args.tool_wait
    n = args.conversations
    errors: list[str] = []
    failures = 0
    latencies: list[float] = []
    verified = 0

    async def one(base: str) -> None:
        nonlocal failures, verified
        start = time.perf_counter()
        try:
            output = await runner.run(prompt_for(base))
        except Exception as exc:  # a failure is a figure here, not an abort
            failures += 1
            if len(errors) < 3:
                errors.append(_error(exc))
            return
        latencies.append(time.perf_counter() - start)
        if verify(output, base):
            verified += 1
        else:
            failures += 1
            if len(errors) < 3:
                errors.append(f"unverified output for {base}: {str(output)[:200]!r}")

    warm = max(1, min(n, args.warmup if args.warmup >= 0 else 100))
    async with asyncio.timeout(args.max_seconds):
        await asyncio.gather(*(one(f"w{i}") for i in range(warm)))
    warm_failures, failures, latencies, verified = failures, 0, [], 0
    lag: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(lag_monitor(lag, stop))
    tasks = [asyncio.create_task(one(f"b{i}")) for i in range(n)]
    c0, t0 = time.process_time(), time.perf_counter()
    _, pending = await asyncio.wait(tasks, timeout=args.max_seconds)
    c1, t1 = time.process_time(), time.perf_counter()
    stop.set()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, monitor, return_exceptions=True)
    unfinished = len(pending)
    return {
        "completed": n,
        "verified": verified,
        "warmup_completed": warm,
        "warmup_verified": warm - warm_failures,
        "errors": errors,
        "in_flight": n,
        "failures": failures,
        "unfinished": unfinished,
        "unfinished_after_s": args.max_seconds if unfinished else None,
        "cpu_s": c1 - c0,
        "wall_s": t1 - t0,
        "cpu_ms_per_conv": (c1 - c0) * 1000 / max(1, verified),
        "conv_per_s": verified / (t1 - t0) if t1 > t0 else math.nan,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else math.nan,
        "lag_p99_ms": percentile(lag, 0.99) * 1000,
        "lag_max_ms": max(lag) * 1000 if lag else math.nan,
        "tolerate_failures": True,
    }


# --------------------------------------------------------------------------- early start


async def early_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    gap = args.gap_ms / 1000.0
    scale = args.gap_ms / EARLY_GAP_MS  # a quick run shrinks the tools with the gap
    waits = tuple(wait * scale for wait in EARLY_WAITS)
    GATE.waits = waits
    bound_ms = max(i * gap + wait for i, wait in enumerate(waits)) * 1000 + 30.0
    steps: list[float] = []
    conversations: list[float] = []
    errors: list[str] = []
    verified = 0
    for index in range(args.runs + 1):
        base = f"t-{args.tag}-{index}"
        start = time.perf_counter()
        try:
            output = await runner.run(prompt_for(base))
        except Exception as exc:  # reported, not fatal
            errors.append(_error(exc))
            continue
        elapsed = time.perf_counter() - start
        trace = await aprobe(args.base_url, f"/_trace/{base}")
        if index == 0:
            continue  # warm-up: first connection, first schemas
        if verify(output, base):
            verified += 1
        elif len(errors) < 3:
            errors.append(f"unverified output: {str(output)[:200]!r}")
        conversations.append(elapsed * 1000)
        if isinstance(trace, list) and len(trace) >= 2:
            steps.append((trace[1] - trace[0]) * 1000)
    return {
        "completed": args.runs,
        "verified": verified,
        "warmup_completed": 0,
        "warmup_verified": 0,
        "errors": errors,
        "step_ms": statistics.median(steps) if steps else math.nan,
        "step_ms_max": max(steps) if steps else math.nan,
        "conversation_ms": statistics.median(conversations) if conversations else math.nan,
        "bound_ms": bound_ms,
        "no_early_start_ms": ((len(waits) - 1) * gap + max(waits)) * 1000,
        "tool_waits_s": list(waits),
        "gap_ms": args.gap_ms,
    }


# --------------------------------------------------------------------------- cache


async def cache_phase(runner: ConversationRunner, args: argparse.Namespace) -> dict[str, Any]:
    GATE.padding = CACHE_PADDING
    key = f"{args.tag}-{time.monotonic_ns()}"
    system = (f"你是一家电器网店的客服助手，回答要准确、礼貌、简洁。[bench-cache:{key}]"
              "查询订单请使用 lookup 工具，把查到的结果原样告诉用户。")
    conversation = await runner.open_conversation([], instructions=system, keep_history=True)
    errors: list[str] = []
    verified = completed = 0
    cpu_ms: list[float] = []
    try:
        for turn in range(args.turns):
            base = f"c{turn}"
            prompt = f"（第{turn + 1}轮）{CACHE_ASK} {prompt_for(base)}"
            c0 = time.process_time()
            try:
                output = await runner.run_in(conversation, prompt)
            except Exception as exc:  # reported; the conversation cannot go on
                errors.append(_error(exc))
                break
            cpu_ms.append((time.process_time() - c0) * 1000)
            completed += 1
            if verify(output, base):
                verified += 1
            elif len(errors) < 3:
                errors.append(f"unverified output: {str(output)[:200]!r}")
    finally:
        await runner.close_conversation(conversation)
    summary = await aprobe(args.base_url, f"/_cache/{key}")
    per_request = summary.get("per_request", []) if isinstance(summary, dict) else []
    # The first request that does not start with the whole previous prompt: history trimmed
    # (or otherwise rewritten); the share from there on is the cache a long conversation gets.
    filled_at = next(
        (i for i, (_, _, extends) in enumerate(per_request) if i and not extends), None
    )
    peak = max((p for p, _, _ in per_request), default=0)
    after = per_request[filled_at:] if filled_at is not None else []
    after_prompt = sum(p for p, _, _ in after)
    return {
        "completed": completed,
        "verified": verified,
        "warmup_completed": 0,
        "warmup_verified": 0,
        "errors": errors,
        "turns": args.turns,
        "requests": summary.get("requests") if isinstance(summary, dict) else None,
        "prompt_tokens": summary.get("prompt_tokens") if isinstance(summary, dict) else None,
        "cached_tokens": summary.get("cached_tokens") if isinstance(summary, dict) else None,
        "cached_share": summary.get("share") if isinstance(summary, dict) else None,
        "first_trimmed_request": filled_at,
        "cached_share_after_trim": (
            sum(c for _, c, _ in after) / after_prompt if after_prompt else None
        ),
        "peak_prompt_tokens": peak,
        "cpu_ms_per_run": statistics.median(cpu_ms) if cpu_ms else math.nan,
        "per_request": per_request,
    }


# --------------------------------------------------------------------------- connections


async def connections_phase(
    runner: ConversationRunner, args: argparse.Namespace
) -> dict[str, Any]:
    errors: list[str] = []
    verified = 0
    first_ok = False
    with contextlib.suppress(Exception):
        first_ok = verify(await runner.run(prompt_for("k0")), "k0")
    first = await aprobe(args.base_url, "/_stats")
    for index in range(1, args.conversations + 1):
        base = f"k{index}"
        try:
            output = await runner.run(prompt_for(base))
        except Exception as exc:  # reported, not fatal
            errors.append(_error(exc))
            continue
        if verify(output, base):
            verified += 1
    last = await aprobe(args.base_url, "/_stats")
    new = last["client_connections"] - first["client_connections"]
    return {
        "completed": args.conversations,
        "verified": verified,
        "warmup_completed": 1,
        "warmup_verified": int(first_ok),
        "errors": errors,
        "new_connections": new,
        "requests": last["requests"] - first["requests"] - 1,
        "per_10_conversations": new * 10 / max(1, args.conversations),
        "calls_per_conversation": CALLS_PER_CONVERSATION,
    }


PHASES = {
    "history": history_phase,
    "burst": burst_phase,
    "early": early_phase,
    "cache": cache_phase,
    "connections": connections_phase,
}
