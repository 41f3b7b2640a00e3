"""Turn the raw runs of `bench.runner` into the markdown of bench/RESULTS.md."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MODE_TITLES = {"plain": "non-streamed", "stream": "streamed"}
POOL_LIBRARIES = ("httpx", "httpx2")
DEFAULT_LIMITS = "100/20"

GOAL_CPU_RATIO = 1.5
GOAL_THROUGHPUT_RATIO = 3.0
GOAL_TOOLS_MS = 230.0
GOAL_MEMORY_KB = 60.0
GOAL_IMPORT_MS = 300.0
KIMI = "kimi-agent"
PEERS = ("openai-agents", "pydantic-ai")


def no_data(result: dict[str, Any]) -> bool:
    """A run that measured nothing (its window hit the time limit before any conversation
    completed: a client starved of CPU), as opposed to one whose outputs failed the check."""
    return (
        bool(result.get("ok")) and not result.get("verified_ok") and not result.get("errors")
        and result.get("completed") == 0 and bool(result.get("window_cut_by_time"))
        and result.get("warmup_verified") == result.get("warmup_completed")
    )


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    n: int


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Results:
    """Index of the runs by (target, mode, scenario), with the medians the tables need."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.meta: dict[str, Any] = data["meta"]
        self.scenarios = {s["key"]: s for s in self.meta["scenarios"]}
        self.cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for run in data["runs"]:
            key = (run["target"], run["mode"], run["scenario"])
            self.cells.setdefault(key, []).append(run["result"])

    def has(self, target: str, mode: str, scenario: str) -> bool:
        return (target, mode, scenario) in self.cells

    def failed(self, target: str, mode: str, scenario: str) -> bool:
        return any(not r.get("verified_ok") and not no_data(r)
                   for r in self.cells.get((target, mode, scenario), []))

    def empty(self) -> list[str]:
        """Runs whose measured window closed at its time limit before a conversation ended."""
        return sorted(
            f"{target} {MODE_TITLES.get(mode, mode)} {scenario}"
            for (target, mode, scenario), results in self.cells.items()
            for r in results if no_data(r)
        )

    def stat(self, target: str, mode: str, scenario: str, metric: str) -> Stat | None:
        values = [
            float(r[metric])
            for r in self.cells.get((target, mode, scenario), [])
            if r.get("verified_ok")
            and isinstance(r.get(metric), int | float)
            and math.isfinite(float(r[metric]))
        ]
        if not values:
            return None
        return Stat(statistics.median(values), min(values), max(values), len(values))

    def median(self, target: str, mode: str, scenario: str, metric: str) -> float | None:
        found = self.stat(target, mode, scenario, metric)
        return None if found is None else found.median

    def cell(self, target: str, mode: str, scenario: str, metric: str) -> str:
        if not self.has(target, mode, scenario):
            return "—"
        if self.failed(target, mode, scenario):
            return "**FAIL**"
        found = self.stat(target, mode, scenario, metric)
        if found is None:
            return "—"
        if found.n == 1 or found.low == found.high:
            return fmt(found.median)
        return f"{fmt(found.median)} ({fmt(found.low)}–{fmt(found.high)})"

    def pair(self, target: str, mode: str, scenario: str, first: str, second: str) -> str:
        if not self.has(target, mode, scenario):
            return "—"
        if self.failed(target, mode, scenario):
            return "**FAIL**"
        a = self.median(target, mode, scenario, first)
        b = self.median(target, mode, scenario, second)
        return f"{fmt(a)} / {fmt(b)}"

    def http_client(self, target: str) -> str:
        for (name, _, _), results in self.cells.items():
            if name == target:
                for result in results:
                    client = result.get("http_client")
                    if client:
                        return str(client)
        return "?"

    def concurrency(self, scenario: str) -> int:
        return int(self.scenarios.get(scenario, {}).get("concurrency", 0))

    def main_targets(self) -> list[str]:
        kinds = {"framework", "floor", "peer"}
        names = [n for n in self.meta["targets"] if n in self.known_kinds(kinds)]
        return names

    def known_kinds(self, kinds: set[str]) -> set[str]:
        from bench.targets import TARGETS_BY_NAME

        return {n for n, t in TARGETS_BY_NAME.items() if t.kind in kinds}


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def verdict(ok: bool | None) -> str:
    return "⏳ pending" if ok is None else ("✅" if ok else "❌")


def goals(res: Results) -> list[str]:
    """The issue's targets, kimi-agent's figure against its reference, per mode."""
    modes: list[str] = res.meta["modes"]
    rows: list[list[str]] = []
    imports = res.data["imports"]
    kimi_client = res.http_client(KIMI)
    floor_library = kimi_client if kimi_client in POOL_LIBRARIES else "httpx"
    for scenario in ("c1", "c200"):
        for mode in modes:
            kimi = res.median(KIMI, mode, scenario, "cpu_ms_per_conv")
            floor = res.median(floor_library, mode, scenario, "cpu_ms_per_conv")
            best = floor
            for limits in ("20/20", "200/200"):
                other = res.median(f"{floor_library}:{limits}", mode, scenario, "cpu_ms_per_conv")
                if other is not None and (best is None or other < best):
                    best = other
            ok = None if kimi is None or floor is None else kimi <= GOAL_CPU_RATIO * floor
            ratio = f" → {kimi / floor:.2f}×" if kimi is not None and floor else ""
            tuned = (
                f"; best pool limits {fmt(best)}" if best is not None and best != floor else ""
            )
            rows.append([
                f"CPU/conversation ≤ {GOAL_CPU_RATIO}× hand-written loop, "
                f"{res.concurrency(scenario)} concurrent",
                MODE_TITLES[mode],
                f"{fmt(kimi)} ms",
                f"{floor_library} loop {fmt(floor)} ms{tuned}{ratio}",
                verdict(ok),
            ])
    for mode in modes:
        kimi = res.median(KIMI, mode, "c200", "conv_per_s")
        peers = {p: res.median(p, mode, "c200", "conv_per_s") for p in PEERS}
        known = [v for v in peers.values() if v is not None]
        need = GOAL_THROUGHPUT_RATIO * max(known) if known else None
        ok = None if kimi is None or need is None else kimi >= need
        ref = ", ".join(f"{p} {fmt(v)}" for p, v in peers.items())
        rows.append([
            f"throughput at {res.concurrency('c200')} concurrent ≥ {GOAL_THROUGHPUT_RATIO:g}× "
            "both peers",
            MODE_TITLES[mode],
            f"{fmt(kimi)} conv/s",
            f"{ref} → need ≥ {fmt(need)}",
            verdict(ok),
        ])
    tools_wait = res.scenarios.get("tools200", {}).get("tool_wait", 0.2) * 1000
    goal_ms = GOAL_TOOLS_MS - 200.0 + tools_wait  # 30 ms over the tools' own wait
    for mode in modes:
        kimi = res.median(KIMI, mode, "tools200", "p99_ms")
        floor = res.median(floor_library, mode, "tools200", "p99_ms")
        ok = None if kimi is None else kimi < goal_ms
        rows.append([
            f"4 tools × {tools_wait:g} ms, 0 ms model: p99 < {goal_ms:g} ms",
            MODE_TITLES[mode],
            f"{fmt(kimi)} ms",
            f"{floor_library} loop {fmt(floor)} ms",
            verdict(ok),
        ])
    for mode in modes:
        kimi = res.median(KIMI, mode, "memory", "rss_kb_per_conv")
        heap = res.median(KIMI, mode, "memory", "heap_kb_per_conv")
        floor = res.median(floor_library, mode, "memory", "rss_kb_per_conv")
        ok = None if kimi is None else kimi <= GOAL_MEMORY_KB and (heap or 0) <= GOAL_MEMORY_KB
        rows.append([
            f"memory per in-flight conversation ≤ {GOAL_MEMORY_KB:g} KB (RSS and heap)",
            MODE_TITLES[mode],
            f"{fmt(kimi)} KB RSS, {fmt(heap)} KB heap",
            f"{floor_library} loop {fmt(floor)} KB RSS",
            verdict(ok),
        ])
    kimi_found = imports.get(KIMI, {})
    kimi_import = kimi_found.get("median_ms") if kimi_found.get("ok") else None
    peer_imports = ", ".join(
        f"{p} {fmt(imports[p]['median_ms'])}" for p in PEERS if imports.get(p, {}).get("ok")
    )
    rows.append([
        f"`import kimi_agent` (+ Agent, GatewayClient, tool) ≤ {GOAL_IMPORT_MS:g} ms",
        "—",
        f"{fmt(kimi_import)} ms",
        peer_imports or "—",
        verdict(None if kimi_import is None else kimi_import <= GOAL_IMPORT_MS),
    ])
    return table(["target to reach", "mode", KIMI, "reference (same run)", ""], rows)


def main_table(res: Results, mode: str) -> list[str]:
    c1, c50, c200 = (res.concurrency(k) for k in ("c1", "c50", "c200"))
    tools_wait = res.scenarios.get("tools200", {}).get("tool_wait", 0.2) * 1000
    held = res.scenarios.get("memory", {}).get("conversations", 0)
    header = [
        "target", "HTTP client",
        f"CPU ms/conv @{c1}", f"CPU ms/conv @{c200}",
        f"conv/s @{c50}", f"conv/s @{c200}",
        f"p50 / p99 ms @{c1}", f"p50 / p99 ms @{c200}",
        f"4×{tools_wait:g} ms tools p50 / p99 ms",
        f"peak RSS MB @{c200}",
        f"KB / in-flight conv, RSS ({held})", "KB / in-flight conv, heap",
    ]
    rows = []
    for target in res.main_targets():
        if not any(res.has(target, mode, s) for s in res.scenarios):
            continue
        rows.append([
            f"**{target}**" if target == KIMI else target,
            res.http_client(target),
            res.cell(target, mode, "c1", "cpu_ms_per_conv"),
            res.cell(target, mode, "c200", "cpu_ms_per_conv"),
            res.cell(target, mode, "c50", "conv_per_s"),
            res.cell(target, mode, "c200", "conv_per_s"),
            res.pair(target, mode, "c1", "p50_ms", "p99_ms"),
            res.pair(target, mode, "c200", "p50_ms", "p99_ms"),
            res.pair(target, mode, "tools200", "p50_ms", "p99_ms"),
            res.cell(target, mode, "c200", "maxrss_mb"),
            res.cell(target, mode, "memory", "rss_kb_per_conv"),
            res.cell(target, mode, "memory", "heap_kb_per_conv"),
        ])
    return table(header, rows)


def import_table(res: Results) -> list[str]:
    from bench.targets import TARGETS_BY_NAME

    rows = []
    for name, found in res.data["imports"].items():
        spec = TARGETS_BY_NAME.get(name)
        if spec is None or spec.kind == "pool" or not found.get("ok"):
            continue
        heavy = ", ".join(f"{pkg} {ms:.0f}" for pkg, ms in found.get("heaviest", []))
        spread = fmt(found["median_ms"])
        if found["min_ms"] != found["max_ms"]:
            spread += f" ({fmt(found['min_ms'])}–{fmt(found['max_ms'])})"
        rows.append([name, f"`{spec.import_code}`", spread, heavy])
    return table(["target", "statement timed", "ms", "heaviest packages (ms, -X importtime)"], rows)


def pool_section(res: Results) -> list[str]:
    modes: list[str] = res.meta["modes"]
    if not any(res.has(f"{lib}:{limits}", m, "c200") for lib in POOL_LIBRARIES
               for limits in ("20/20", "200/200") for m in modes):
        return []  # only the default limits ran (no --pools): nothing to compare
    header = ["client", "Limits(max_connections / max_keepalive)"]
    for mode in modes:
        title = MODE_TITLES[mode]
        header += [f"{title}: CPU ms/conv", f"{title}: conv/s", f"{title}: p99 ms"]
    rows = []
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for lib in POOL_LIBRARIES:
        for limits in (DEFAULT_LIMITS, "20/20", "200/200"):
            target = lib if limits == DEFAULT_LIMITS else f"{lib}:{limits}"
            if not any(res.has(target, m, "c200") for m in modes):
                continue
            row = [lib, limits + (" (default)" if limits == DEFAULT_LIMITS else "")]
            for mode in modes:
                row += [
                    res.cell(target, mode, "c200", "cpu_ms_per_conv"),
                    res.cell(target, mode, "c200", "conv_per_s"),
                    res.cell(target, mode, "c200", "p99_ms"),
                ]
                cpu = res.median(target, mode, "c200", "cpu_ms_per_conv")
                if cpu is not None and (
                    (lib, mode) not in best or cpu < best[(lib, mode)][0]
                ):
                    best[(lib, mode)] = (cpu, limits)
            rows.append(row)
    lines = [
        f"## Connection pool: httpx vs httpx2, hand-written loop, {res.concurrency('c200')} "
        "concurrent",
        "",
        *table(header, rows),
        "",
        "Why (cProfile of the workers, see bench/README.md): httpcore 1.0's pool rescans every "
        "connection for every queued request on every pass (O(queued × connections)); "
        "httpcore2's pass is linear but probes the socket of every idle keep-alive connection "
        "each time, so a large keep-alive pool costs more, not less.",
        "",
    ]
    for mode in modes:
        a, b = best.get(("httpx", mode)), best.get(("httpx2", mode))
        default_a = res.median("httpx", mode, "c200", "cpu_ms_per_conv")
        default_b = res.median("httpx2", mode, "c200", "cpu_ms_per_conv")
        lines.append(pool_finding(mode, a, b, default_a, default_b))
    lines.append("")
    return lines


def pool_finding(
    mode: str,
    a: tuple[float, str] | None,
    b: tuple[float, str] | None,
    default_a: float | None,
    default_b: float | None,
) -> str:
    if a is None or b is None or not default_a or not default_b:
        return f"- {MODE_TITLES[mode]}: not enough data."
    return (
        f"- {MODE_TITLES[mode]}: default limits — httpx {fmt(default_a)} vs httpx2 "
        f"{fmt(default_b)} ms CPU/conversation ({default_a / default_b:.1f}×); best limits "
        f"tried — httpx {fmt(a[0])} ({a[1]}) vs httpx2 {fmt(b[0])} ({b[1]}) "
        f"({a[0] / b[0]:.1f}×)."
    )


def gateway_note(res: Results) -> list[str]:
    costs = [
        r["gateway_cpu_ms_per_conv"]
        for (target, _, scenario), results in res.cells.items()
        if scenario == "c200"
        for r in results
        if r.get("verified_ok") and isinstance(r.get("gateway_cpu_ms_per_conv"), int | float)
    ]
    clients = [
        r["cpu_ms_per_conv"]
        for (_, _, scenario), results in res.cells.items()
        if scenario == "c200"
        for r in results
        if r.get("verified_ok")
    ]
    if not costs or not clients:
        return []
    return [
        f"- The fake gateway, on a core of its own, spent {fmt(statistics.median(costs))} ms "
        f"CPU per conversation (median of the {res.concurrency('c200')}-concurrent runs, "
        f"max {fmt(max(costs))}), against {fmt(min(clients))} ms for the cheapest client there: "
        "the client, not the fake, is what the throughput figures measure.",
    ]


def contention_note(res: Results) -> list[str]:
    """Runs at 50/200 concurrent are CPU-bound: a client that got much less than a whole CPU
    over the measured phase shared its core with something else on the machine."""
    starved = sorted(
        f"{target} {MODE_TITLES[mode]} @{res.concurrency(scenario)} ({r['cpu_share']:.2f})"
        for (target, mode, scenario), results in res.cells.items()
        if scenario in ("c50", "c200")
        for r in results
        if r.get("verified_ok") and isinstance(r.get("cpu_share"), float)
        and r["cpu_share"] < 0.8
    )
    empty = res.empty()
    lines = [] if not empty else [
        f"- {len(empty)} run(s) measured nothing: the window reached its time limit before "
        "one conversation completed (the client got a fraction of its core), so the cell "
        "is the median of the other repeats, or — : " + ", ".join(empty) + "."
    ]
    if not starved:
        return [*lines, "- Every CPU-bound run (50 and 200 concurrent) had its core to itself "
                "(client CPU ÷ wall time ≥ 0.8)."]
    return [*lines,
        f"- {len(starved)} CPU-bound run(s) got less than 0.8 of a core (another process was "
        "busy on the machine); their throughput is low, their CPU/conversation much less affected, "
        "and the median of the repeats discards them when the other repeats are clean: "
        + ", ".join(starved[:12]) + ("…" if len(starved) > 12 else "") + ".",
    ]


def shared_machine_note(machine: dict[str, Any]) -> list[str]:
    """A warning when other processes loaded the machine during the run."""
    loads = list(machine.get("loadavg_during") or [])
    for key in ("loadavg_start", "loadavg_end"):
        if machine.get(key):
            loads.append(float(machine[key][0]))
    cores = machine.get("cores") or 1
    if not loads or max(loads) <= 0.75 * cores + 1.0:  # our own client + gateway: ≈ 2
        return []
    return [
        f"> **Shared machine.** The 1-minute load average went up to {max(loads):.1f} during "
        f"this run, on {cores} cores (the benchmark itself accounts for about 2): other "
        "processes competed for the CPUs the client and the fake gateway were pinned to. "
        "Wall-time figures (conv/s, latencies, import, registration and start-up times) are "
        "inflated by it; CPU-time figures (ms per conversation or run) much less, but not "
        "nothing (shared caches, preemption). Every ratio is taken within the same run.",
        "",
    ]


def render_markdown(data: dict[str, Any]) -> str:
    res = Results(data)
    meta = res.meta
    machine = meta["machine"]
    versions = meta["versions"]
    lines = ["# kimi-agent benchmarks", ""]
    if KIMI in data["skipped"]:
        lines += [
            f"> **Provisional.** The kimi-agent rows are empty: {data['skipped'][KIMI]}. They "
            "will be filled in by re-running `python -m bench` once `kimi_agent.Agent` exists; "
            "the floor and peer figures below are from this run.",
            "",
        ]
    if meta.get("quick"):
        lines += ["> Quick smoke run: tiny numbers of conversations, not benchmark figures.", ""]
    lines += shared_machine_note(machine)
    load = machine.get("loadavg_start")
    load_text = " / ".join(f"{x:.2f}" for x in load) if load else "n/a"
    end = machine.get("loadavg_end")
    during = machine.get("loadavg_during") or []
    if end:
        load_text += f", at the end {' / '.join(f'{x:.2f}' for x in end)}"
    if during:
        load_text += (f", 1-minute load before each run {min(during):.2f}–{max(during):.2f} "
                      f"(median {statistics.median(during):.2f})")
    lines += [
        f"- **Date**: {meta['date']} (run took {meta.get('elapsed_s', 0):.0f} s)",
        f"- **Machine**: {machine['cpu']}, {machine['cores']} cores, {machine['python']}, "
        f"{machine['platform']}; load average (1 / 5 / 15 min) at start {load_text}",
        f"- **Pinning**: client on CPU {meta.get('client_cpus') or 'any'}, fake gateway on CPU "
        f"{meta.get('gateway_cpus') or 'any'}",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; repository at {meta.get('revision', 'unknown')}",
        f"- **Settings**: {meta['repeats']} repeats per figure (median, min–max in brackets), "
        f"model latency {meta['model_latency_ms']:g} ms, tools wait 0 ms except the tools row",
        "",
    ]
    for part in meta.get("merged", []):
        load = part.get("loadavg_start") or []
        lines.append(
            f"- **Re-run on its own** ({part['date']}, {part.get('elapsed_s') or 0:.0f} s, "
            f"repository at {part.get('revision')}, load average at start "
            f"{' / '.join(f'{x:.2f}' for x in load) or 'n/a'}): "
            + ", ".join(part["cells"])
        )
    if meta.get("merged"):
        lines.append("")
    if data["skipped"]:
        lines += ["Skipped targets:", ""]
        lines += [f"- {name}: {why}" for name, why in data["skipped"].items()]
        lines.append("")
    from bench import report_issue14

    lines += ["## Targets (issue 14)", "", *report_issue14.goals(res), "",
              *report_issue14.misses(res), ""]
    lines += ["## Earlier targets (issue 8)", "", *goals(res), ""]
    for mode in meta["modes"]:
        lines += [f"## {MODE_TITLES[mode].capitalize()}", "", *main_table(res, mode), ""]
    lines += report_issue14.sections(res)
    lines += ["## Import time (fresh interpreter, median of "
              f"{meta['import_repeats']})", "", *import_table(res), ""]
    lines += pool_section(res)
    lines += ["## Notes", "", *gateway_note(res), *contention_note(res)]
    lines += [
        "- Targets: " + "; ".join(f"**{k}** — {v}" for k, v in meta["targets"].items()
                                   if ":" not in k),
        "- The HTTP client: kimi-agent's GatewayClient moved from httpx 0.28 to httpx2 "
        "(same API, one import point) because of httpx 0.28's pool cost (`python -m bench "
        "--pools` runs the comparison, see bench/README.md): with httpx the non-streamed "
        "throughput target at 200 concurrent was "
        "missed (81–194 conv/s against ≥ 3× the peers); tuning httpx's limits helped one mode "
        "and hurt the other. Its own pool keeps httpx2's default 100 connections / 20 "
        "keep-alive (more keep-alive costs CPU, fewer connections would queue requests "
        "behind slow real replies).",
        "- Method (details in bench/README.md): CPU = user+sys `getrusage` of the client "
        "process over a steady-state window at full concurrency ÷ the conversations completed "
        "in it; memory = growth per conversation held in flight (tools blocked), added 10 at a "
        "time, RSS first, then the Python heap under tracemalloc.",
        "",
    ]
    return "\n".join(lines)


def render_summary(data: dict[str, Any]) -> str:
    from bench import report_issue14

    res = Results(data)
    lines = ["", *report_issue14.goals(res), ""]
    for mode in res.meta["modes"]:
        lines += [MODE_TITLES[mode], *main_table(res, mode), ""]
    return "\n".join(lines)
