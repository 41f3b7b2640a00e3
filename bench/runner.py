"""`python -m bench`: start the fake gateway, run every target × mode × scenario × repeat in
a worker process of its own, time the imports, and write the markdown table.

Every child process is bounded in time, dies with this process (PR_SET_PDEATHSIG) and is
killed by process group on timeout; the gateway listens on loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import micro
from bench.report import no_data, render_markdown, render_summary
from bench.targets import ALL_TARGETS, TARGETS_BY_NAME, TargetSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
MODES: tuple[str, ...] = ("plain", "stream")
GATEWAY_START_TIMEOUT_S = 20.0
IMPORT_TIMEOUT_S = 60.0
JOB_OVERHEAD_S = 90.0  # import, warm-up and drain on top of a scenario's measuring time


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # "load", "memory", or a phase of bench.phases
    concurrency: int
    conversations: int  # load: most conversations in the measured window; memory: held
    min_seconds: float  # load: the window closes after this, on a multiple of concurrency
    max_seconds: float  # hard cap of a phase
    tool_wait: float = 0.0
    warmup: int = -1  # -1: one full wave (= concurrency)
    heap_conversations: int = 20
    route: str = ""
    """Path segments in front of /v1 that set the gateway's behaviour (e.g. "lat500")."""
    modes: tuple[str, ...] | None = None
    """Modes this scenario runs in (None: every mode asked for)."""
    targets: tuple[str, ...] | None = None
    """Targets this scenario runs (None: every target whose spec allows it)."""
    repeats: int | None = None
    """Repeats of this scenario (None: the run's --repeats)."""
    options: tuple[str, ...] = ()
    """Extra worker arguments."""
    target_modes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Per-target restriction of `modes` (target name, modes)."""
    history: str = ""
    """history scenarios: "stored" (kimi-agent captures what it sends) or "sent"."""
    stored: int = 0


KIMI = "kimi-agent"
KIMI_EARLY = "kimi-agent[read_only]"
FLOOR = "httpx2"
PAIR = (KIMI, FLOOR)


def history_scenarios(sizes: tuple[int, ...], runs: int) -> tuple[Scenario, ...]:
    """CPU per run with `size` stored messages, in memory and in SQLite; the hand-written
    loop (memory rows only: it keeps a list whatever the store) sends the captured request;
    kimi-agent with only the sent messages stored, where that differs."""
    found: list[Scenario] = []
    biggest = max(sizes)
    for size in sizes:
        for store in ("memory", "sqlite"):
            found.append(Scenario(
                f"h{size}{store[0]}", f"{size} stored messages ({store})", "history", 1, 0,
                0.0, 120.0, modes=("plain",),
                targets=PAIR if store == "memory" else (KIMI,), repeats=1,
                options=("--stored", str(size), "--store", store, "--runs", str(runs)),
                history="stored", stored=size,
            ))
    for store in ("memory", "sqlite"):
        found.append(Scenario(
            f"s{biggest}{store[0]}", f"only the sent messages of {biggest} stored ({store})",
            "history", 1, 0, 0.0, 120.0, modes=("plain",), targets=(KIMI,), repeats=1,
            options=("--stored", str(biggest), "--store", store, "--runs", str(runs),
                     "--history-source", "sent"),
            history="sent", stored=biggest,
        ))
    return tuple(found)


def burst(
    n: int, latency_ms: int, max_seconds: float, warmup: int = 100, floor_plain: bool = False
) -> Scenario:
    """`n` conversations at once on a slow model. `floor_plain`: the hand-written loop only
    non-streamed (5,000 at once take over a minute per run at the default pool's 100/s)."""
    return Scenario(f"f{n}", f"{n} in flight, {latency_ms} ms model", "burst", n, n, 0.0,
                    max_seconds, warmup=warmup, route=f"lat{latency_ms}", targets=PAIR,
                    repeats=1, target_modes=((FLOOR, ("plain",)),) if floor_plain else ())


FULL_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("c1", "1 concurrent", "load", 1, 150, 1.5, 5.0, warmup=5),
    Scenario("c50", "50 concurrent", "load", 50, 5000, 2.0, 10.0, warmup=50),
    Scenario("c200", "200 concurrent", "load", 200, 5000, 2.0, 12.0, warmup=200),
    Scenario("tools200", "4×200 ms tools", "load", 1, 5, 10.0, 10.0, 0.2, warmup=1),
    # memory per conversation barely moves between repeats (39.1-39.4 KB over three): one
    # repeat keeps the whole run under 15 minutes on 2 cores
    Scenario("memory", "100 in flight", "memory", 100, 100, 0.0, 30.0, warmup=10,
             heap_conversations=30, repeats=1),
    Scenario("conn10", "10 conversations in a row", "connections", 1, 10, 0.0, 30.0,
             repeats=1),
    *history_scenarios((10, 1000, 10000), 10),
    burst(200, 500, 60.0),
    burst(1000, 500, 90.0),
    burst(5000, 500, 240.0, floor_plain=True),
    Scenario("early", "4 calls 250 ms apart, tools 0.2–1 s", "early", 1, 0, 0.0, 60.0,
             route="gap250", modes=("stream",), targets=(KIMI, KIMI_EARLY, FLOOR), repeats=1,
             options=("--runs", "5", "--gap-ms", "250")),
    Scenario("cache", "200-turn Chinese conversation", "cache", 1, 0, 0.0, 240.0,
             modes=("plain",), targets=PAIR, repeats=1, options=("--turns", "200")),
)

QUICK_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("c1", "1 concurrent", "load", 1, 3, 5.0, 5.0, warmup=1),
    Scenario("c50", "4 concurrent (quick)", "load", 4, 8, 5.0, 5.0, warmup=4),
    Scenario("c200", "8 concurrent (quick)", "load", 8, 16, 5.0, 5.0, warmup=8),
    Scenario("tools200", "4×20 ms tools (quick)", "load", 1, 2, 5.0, 5.0, 0.02, warmup=1),
    Scenario("memory", "6 in flight (quick)", "memory", 6, 6, 0.0, 10.0, warmup=2,
             heap_conversations=3),
    Scenario("conn10", "3 conversations in a row (quick)", "connections", 1, 3, 0.0, 20.0,
             repeats=1),
    *history_scenarios((10, 100), 1),
    burst(20, 20, 30.0, warmup=4),
    Scenario("early", "4 calls 25 ms apart (quick)", "early", 1, 0, 0.0, 20.0,
             route="gap25", modes=("stream",), targets=(KIMI, KIMI_EARLY, FLOOR), repeats=1,
             options=("--runs", "1", "--gap-ms", "25")),
    Scenario("cache", "4-turn conversation (quick)", "cache", 1, 0, 0.0, 30.0,
             modes=("plain",), targets=PAIR, repeats=1, options=("--turns", "4")),
)


@dataclass
class Settings:
    targets: list[TargetSpec]
    scenarios: list[Scenario]
    modes: list[str]
    repeats: int
    import_repeats: int
    model_latency_ms: float
    client_cpus: set[int] | None
    gateway_cpus: set[int] | None
    out: Path
    json_out: Path | None
    quick: bool
    micro_repeats: int = 7
    render: list[Path] | None = None


@dataclass
class Run:
    target: str
    mode: str
    scenario: str
    repeat: int
    result: dict[str, Any] = field(default_factory=dict)


def log(message: str, started: float = time.monotonic()) -> None:
    print(f"[bench {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.pop("PYTHONTRACEMALLOC", None)
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def cpus_arg(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus)) if cpus else ""


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """End a child started with start_new_session=True, and everything it started."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# --------------------------------------------------------------------------- the gateway


class GatewayProcess:
    """The fake gateway in a process of its own, pinned away from the client's CPU."""

    def __init__(self, latency_ms: float, cpus: set[int] | None, lifetime_s: float) -> None:
        self.latency_ms = latency_ms
        self.cpus = cpus
        self.lifetime_s = lifetime_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.port = 0

    def __enter__(self) -> GatewayProcess:
        cmd = [
            sys.executable, "-m", "bench.gateway", "--host", "127.0.0.1", "--port", "0",
            "--latency-ms", str(self.latency_ms), "--max-lifetime", str(self.lifetime_s),
            "--cpus", cpus_arg(self.cpus),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            line = LineReader(self.proc).readline(GATEWAY_START_TIMEOUT_S)
            if not line.startswith("READY "):
                raise RuntimeError(f"fake gateway did not start: {line!r}")
            self.base_url = line.split(" ", 1)[1].strip()
            self.port = int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])
        except BaseException:
            kill_group(self.proc)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            kill_group(self.proc)

    def stats(self) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/_stats")
            stats: dict[str, Any] = json.loads(connection.getresponse().read())
            return stats
        except (OSError, ValueError):
            return {}
        finally:
            connection.close()


class LineReader:
    """Lines from a child's stdout pipe with a time limit (select on the fd, own buffer)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""

    def readline(self, timeout: float) -> str:
        """The next line, '' at end of file; TimeoutError if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            for _ in range(100_000):
                if b"\n" in self.buffer:
                    line, _, self.buffer = self.buffer.partition(b"\n")
                    return line.decode("utf-8", "replace") + "\n"
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"no output within {timeout:.0f} s")
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    rest, self.buffer = self.buffer, b""
                    return rest.decode("utf-8", "replace")
                self.buffer += chunk
        raise TimeoutError("too much output without a newline")


# --------------------------------------------------------------------------- workers


class Zygote:
    """`python -m bench.worker --zygote` for one target: imports it once, forks one child per
    job. Restarted if it ever dies or overruns a job's time limit."""

    def __init__(self, spec: TargetSpec, lifetime_s: float) -> None:
        self.spec = spec
        self.lifetime_s = lifetime_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: LineReader | None = None
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in dispose()

    def _start(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "bench.worker", "--zygote", "--target", self.spec.name,
            "--max-lifetime", str(self.lifetime_s),
        ]
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, start_new_session=True,
        )
        self.reader = LineReader(proc)
        try:
            line = self.reader.readline(IMPORT_TIMEOUT_S)
        except TimeoutError:
            line = ""
        if line.strip() != "READY":
            kill_group(proc)
            raise RuntimeError(f"worker for {self.spec.name} did not start: {self.errors()}")
        return proc

    def errors(self) -> str:
        """The tail of what the worker wrote to stderr."""
        self.stderr.flush()
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", "replace")
        self.stderr.seek(0, os.SEEK_END)
        return text.strip()[-1500:]

    def run(self, job: list[str], timeout: float) -> str | None:
        """Run one job in a fresh child; None if it finished, else what went wrong."""
        if self.proc is None or self.proc.poll() is not None:
            try:
                self.proc = self._start()
            except RuntimeError as exc:
                return str(exc)
        proc, reader = self.proc, self.reader
        assert proc.stdin is not None and reader is not None
        try:
            proc.stdin.write(json.dumps(job).encode() + b"\n")
            proc.stdin.flush()
            deadline = time.monotonic() + timeout
            for _ in range(1000):  # skip anything a child printed; DONE ends the job
                line = reader.readline(max(0.1, deadline - time.monotonic()))
                if not line:
                    raise RuntimeError(f"worker exited ({proc.poll()})")
                if line.startswith("DONE "):
                    code = line.split()[1]
                    return None if code == "0" else f"worker exited {code}: {self.errors()}"
            raise RuntimeError("worker said too much")
        except (TimeoutError, RuntimeError, OSError) as exc:
            self.close()
            return f"{exc}" if not isinstance(exc, TimeoutError) else (
                f"worker timed out after {timeout:.0f} s"
            )

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            kill_group(self.proc)
            self.proc = None

    def dispose(self) -> None:
        self.close()
        self.stderr.close()


def run_worker(
    settings: Settings, gateway: GatewayProcess, zygote: Zygote, mode: str,
    scenario: Scenario, workdir: Path, index: int,
) -> dict[str, Any]:
    result_file = workdir / f"run-{index}.json"
    timeout = scenario.max_seconds * 2 + JOB_OVERHEAD_S
    base_url = gateway.base_url
    if scenario.route:
        base_url = base_url.removesuffix("/v1") + f"/{scenario.route}/v1"
    job = [
        "--target", zygote.spec.name, "--mode", mode,
        "--kind", scenario.kind, "--base-url", base_url,
        "--concurrency", str(scenario.concurrency),
        "--conversations", str(scenario.conversations), "--warmup", str(scenario.warmup),
        "--min-seconds", str(scenario.min_seconds), "--max-seconds", str(scenario.max_seconds),
        "--tool-wait", str(scenario.tool_wait),
        "--heap-conversations", str(scenario.heap_conversations),
        "--result-file", str(result_file), "--cpus", cpus_arg(settings.client_cpus),
        "--max-lifetime", str(timeout + 5), "--tag", f"{scenario.key}-{mode}-{index}",
        *scenario.options,
    ]
    if scenario.history:
        capture = workdir / f"capture-{scenario.stored}.json"
        if zygote.spec.name == KIMI and scenario.history == "stored":
            job += ["--capture-out", str(capture)]
        elif capture.exists():
            job += ["--history-file", str(capture)]
    before = gateway.stats()
    problem = zygote.run(job, timeout + 10)
    after = gateway.stats()
    try:
        result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"ok": False, "errors": [problem or "no result"]}
    if before and after:
        conversations = result.get("completed", 0) + result.get("warmup_completed", 0)
        cpu = after["cpu_s"] - before["cpu_s"]
        result["gateway_cpu_ms_per_conv"] = cpu * 1000 / conversations if conversations else None
        result["gateway_requests"] = after["requests"] - before["requests"]
        if "client_connections" in after:
            new = after["client_connections"] - before["client_connections"]
            result["gateway_new_connections"] = new
            result["new_connections_per_conv"] = new / conversations if conversations else None
    return result


def run_ok(result: dict[str, Any]) -> bool:
    if result.get("unsupported") and result.get("ok"):
        return True  # a feature the target lacks: reported as "not available"
    if result.get("tolerate_failures"):  # failures are a figure of this scenario
        return bool(result.get("ok")) and result.get("verified", 0) > 0
    return (
        bool(result.get("ok"))
        and not result.get("errors")
        and result.get("completed", 0) > 0
        and result.get("verified") == result.get("completed")
        and result.get("warmup_verified") == result.get("warmup_completed")
    )


# --------------------------------------------------------------------------- imports


def measure_imports(
    spec: TargetSpec, repeats: int, cpus: set[int] | None, detail: bool = True
) -> dict[str, Any]:
    """Median wall time of the target's imports in fresh interpreters (after one unmeasured
    run that also writes the bytecode caches), plus the heaviest packages by -X importtime."""
    code = (
        "import os, time\n"
        f"cpus = {sorted(cpus) if cpus else None!r}\n"
        "cpus and os.sched_setaffinity(0, cpus)\n"
        "t = time.perf_counter()\n"
        f"{spec.import_code}\n"
        "print(time.perf_counter() - t)\n"
    )
    samples: list[float] = []
    for attempt in range(repeats + 1):
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env(),
                capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"import timed out after {IMPORT_TIMEOUT_S:.0f} s"}
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["(no output)"]
            return {"ok": False, "error": lines[-1][:300]}
        if attempt:
            samples.append(float(done.stdout.strip().splitlines()[-1]) * 1000)
    return {
        "ok": True,
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "samples_ms": samples,
        "heaviest": heaviest_imports(spec) if detail else [],
    }


def package_import_times(code: str) -> dict[str, float]:
    """Cumulative `-X importtime` (ms) per top-level package that `code` loads, taken where the
    package first appears (its shallowest imports), so nested modules are not counted twice."""
    try:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], cwd=REPO_ROOT,
            env=child_env(), capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {}
    entries: list[tuple[int, str, float]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        depth = len(name) - len(name.lstrip(" "))
        entries.append((depth, name.strip().split(".")[0], int(parts[1]) / 1000))
    shallowest: dict[str, int] = {}
    for depth, package, _ in entries:
        shallowest[package] = min(depth, shallowest.get(package, depth))
    totals: dict[str, float] = {}
    for depth, package, cumulative in entries:
        if depth == shallowest[package]:
            totals[package] = totals.get(package, 0.0) + cumulative
    return totals


_STARTUP: dict[str, float] | None = None


def heaviest_imports(spec: TargetSpec, top: int = 6) -> list[tuple[str, float]]:
    """The target's heaviest top-level packages, without what the interpreter loads anyway."""
    global _STARTUP
    if _STARTUP is None:
        _STARTUP = package_import_times("pass")
    totals = package_import_times(spec.import_code)
    own = {k: v for k, v in totals.items() if k not in _STARTUP}
    return sorted(own.items(), key=lambda item: -item[1])[:top]


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import platform

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def git_revision() -> str:
    """The commit the benchmark ran on, '+ changes' when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "kimi_agent"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes in kimi_agent/' if dirty else ''}"


def versions() -> dict[str, str]:
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in (
        "kimi-agent", "httpx", "httpcore", "httpx2", "httpcore2", "httpx-sse",
        "openai-agents", "openai", "pydantic-ai-slim", "pydantic", "anyio",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark kimi-agent against a hand-written loop and peer frameworks.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument(
        "--targets", nargs="+", metavar="NAME",
        help=f"targets to run (default: all): {', '.join(TARGETS_BY_NAME)}",
    )
    parser.add_argument(
        "--scenarios", nargs="+", metavar="KEY",
        help=f"scenarios (default: all): {', '.join(s.key for s in FULL_SCENARIOS)}",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--pools", action="store_true",
        help="also run the hand-written loop with other pool limits (issue 8's comparison)",
    )
    parser.add_argument("--micro-repeats", type=int, help="fresh interpreters (default 5)")
    parser.add_argument("--repeats", type=int, help="repeats per figure (default 3, quick 1)")
    parser.add_argument("--import-repeats", type=int, help="fresh interpreters (default 5)")
    parser.add_argument("--model-latency-ms", type=float, default=0.0)
    parser.add_argument("--no-pin", action="store_true", help="do not pin client/gateway CPUs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output")
    parser.add_argument("--json", type=Path, help="raw results (default: OUT with .json)")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", nargs="+",
        help="measure nothing: rewrite OUT (and its .json) from the raw results of earlier "
        "runs; a later file's runs replace an earlier one's for the same target, mode and "
        "scenario (e.g. a scenario re-run on its own), and RESULTS.md says so",
    )
    args = parser.parse_args(argv)

    names = [n for item in (args.targets or []) for n in item.split(",") if n]
    unknown = [n for n in names if n not in TARGETS_BY_NAME]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    targets = [TARGETS_BY_NAME[n] for n in names] if names else list(ALL_TARGETS)
    if not names and not args.pools:
        targets = [t for t in targets if t.kind != "pool"]
    pool = FULL_SCENARIOS if not args.quick else QUICK_SCENARIOS
    keys = [k for item in (args.scenarios or []) for k in item.split(",") if k]
    known = {s.key for s in pool}
    if any(k not in known for k in keys):
        parser.error(f"unknown scenario(s); choose from {', '.join(sorted(known))}")
    scenarios = [s for s in pool if not keys or s.key in keys]

    client_cpus: set[int] | None = None
    gateway_cpus: set[int] | None = None
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not args.no_pin and len(available) >= 2:
        gateway_cpus = {available[-1]}
        client_cpus = set(available[:-1])
    return Settings(
        targets=targets,
        scenarios=scenarios,
        modes=list(dict.fromkeys(args.modes)),
        repeats=max(1, args.repeats or (1 if args.quick else 3)),
        import_repeats=max(1, args.import_repeats or (1 if args.quick else 5)),
        micro_repeats=max(1, args.micro_repeats or (1 if args.quick else 5)),
        model_latency_ms=args.model_latency_ms,
        client_cpus=client_cpus,
        gateway_cpus=gateway_cpus,
        out=args.out,
        json_out=args.json or args.out.with_suffix(".json"),
        quick=args.quick,
        render=args.render,
    )


def plan(settings: Settings, available: list[TargetSpec]) -> Iterator[tuple[int, Scenario, str,
                                                                             TargetSpec]]:
    """Repeats outermost, so slow drift of the machine spreads over all targets alike.

    Targets run in the registry's order whatever order they were asked in: kimi-agent first,
    so the history scenarios' hand-written loop gets the request kimi-agent captured."""
    order = {spec.name: index for index, spec in enumerate(ALL_TARGETS)}
    available = sorted(available, key=lambda spec: order.get(spec.name, len(order)))
    for repeat in range(settings.repeats):
        for scenario in settings.scenarios:
            if repeat >= (scenario.repeats or settings.repeats):
                continue
            for mode in settings.modes:
                if scenario.modes is not None and mode not in scenario.modes:
                    continue
                for spec in available:
                    only = dict(scenario.target_modes).get(spec.name)
                    if only is not None and mode not in only:
                        continue
                    if scenario.targets is not None:
                        if spec.name in scenario.targets:
                            yield repeat, scenario, mode, spec
                    elif spec.scenarios is None or scenario.key in spec.scenarios:
                        yield repeat, scenario, mode, spec


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result set from several runs: the first's meta, imports and micro figures; every
    later part's runs replace the first's for the same (target, mode, scenario), and the
    meta records which cells came from which run (date, load, revision)."""
    merged = parts[0]
    for part in parts[1:]:
        cells = {(r["target"], r["mode"], r["scenario"]) for r in part["runs"]}
        merged["runs"] = [
            r for r in merged["runs"] if (r["target"], r["mode"], r["scenario"]) not in cells
        ] + part["runs"]
        known = {s["key"] for s in merged["meta"]["scenarios"]}
        for scenario in part["meta"]["scenarios"]:
            if scenario["key"] in known:
                merged["meta"]["scenarios"] = [
                    scenario if s["key"] == scenario["key"] else s
                    for s in merged["meta"]["scenarios"]
                ]
            else:
                merged["meta"]["scenarios"].append(scenario)
        merged["meta"].setdefault("merged", []).append({
            "date": part["meta"]["date"],
            "revision": part["meta"].get("revision"),
            "elapsed_s": part["meta"].get("elapsed_s"),
            "loadavg_start": part["meta"]["machine"].get("loadavg_start"),
            "loadavg_end": part["meta"]["machine"].get("loadavg_end"),
            "cells": sorted(f"{t} {m} {s}" for t, m, s in cells),
        })
    return merged


def dump_results(data: dict[str, Any]) -> str:
    """The raw results as JSON, one run per line (readable diffs, no indentation bloat)."""
    head = {k: v for k, v in data.items() if k != "runs"}
    lines = [json.dumps(head, default=str)[:-1] + ', "runs": [']
    lines += [json.dumps(run, default=str) + "," for run in data["runs"]]
    if data["runs"]:
        lines[-1] = lines[-1][:-1]
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    if settings.render is not None:
        saved = merge_results(
            [json.loads(path.read_text(encoding="utf-8")) for path in settings.render]
        )
        settings.out.write_text(render_markdown(saved), encoding="utf-8")
        if len(settings.render) > 1 and settings.json_out is not None:
            settings.json_out.write_text(dump_results(saved), encoding="utf-8")
        log(f"wrote {settings.out} from {', '.join(map(str, settings.render))}")
        return 0
    started = time.time()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "machine": machine_info(),
        "versions": versions(),
        "revision": git_revision(),
        "quick": settings.quick,
        "repeats": settings.repeats,
        "import_repeats": settings.import_repeats,
        "micro_repeats": settings.micro_repeats,
        "model_latency_ms": settings.model_latency_ms,
        "client_cpus": sorted(settings.client_cpus) if settings.client_cpus else None,
        "gateway_cpus": sorted(settings.gateway_cpus) if settings.gateway_cpus else None,
        "scenarios": [asdict(s) for s in settings.scenarios],
        "modes": settings.modes,
        "targets": {t.name: t.description for t in settings.targets},
    }
    skipped: dict[str, str] = {}
    imports: dict[str, dict[str, Any]] = {}
    available: list[TargetSpec] = []
    for spec in settings.targets:
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        if missing:
            skipped[spec.name] = f"not installed: {', '.join(missing)}"
            log(f"skip {spec.name}: {skipped[spec.name]}")
            continue
        if spec.kind in ("pool", "variant"):  # the same imports as the plain target
            available.append(spec)
            continue
        log(f"import time of {spec.name}")
        imports[spec.name] = measure_imports(
            spec, settings.import_repeats, settings.client_cpus, detail=not settings.quick
        )
        if not imports[spec.name]["ok"]:
            skipped[spec.name] = f"cannot import: {imports[spec.name]['error']}"
            log(f"skip {spec.name}: {skipped[spec.name]}")
            continue
        available.append(spec)

    micro = measure_micro(settings, [s.name for s in available])
    runs: list[Run] = []
    jobs = list(plan(settings, available))
    lifetime = sum(s.max_seconds * 2 + JOB_OVERHEAD_S for _, s, _, _ in jobs) + 60
    zygotes = {spec.name: Zygote(spec, lifetime) for spec in available}
    load_samples: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="kimi-bench-") as tmp, GatewayProcess(
            settings.model_latency_ms, settings.gateway_cpus, lifetime
        ) as gateway:
            log(f"fake gateway at {gateway.base_url}; {len(jobs)} runs")
            for index, (repeat, scenario, mode, spec) in enumerate(jobs):
                if hasattr(os, "getloadavg"):
                    load_samples.append(round(os.getloadavg()[0], 2))
                result = run_worker(
                    settings, gateway, zygotes[spec.name], mode, scenario, Path(tmp), index
                )
                result["verified_ok"] = run_ok(result)
                runs.append(Run(spec.name, mode, scenario.key, repeat, result))
                log(describe(index, len(jobs), spec, mode, scenario, repeat, result))
            meta["gateway_totals"] = gateway.stats()
    finally:
        for zygote in zygotes.values():
            zygote.dispose()
    meta["elapsed_s"] = time.time() - started
    meta["machine"]["loadavg_during"] = load_samples
    meta["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    data: dict[str, Any] = {
        "meta": meta,
        "skipped": skipped,
        "imports": imports,
        "micro": micro,
        "runs": [asdict(r) for r in runs],
    }
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    settings.out.write_text(render_markdown(data), encoding="utf-8")
    if settings.json_out is not None:
        settings.json_out.write_text(dump_results(data), encoding="utf-8")
    print(render_summary(data))
    log(f"wrote {settings.out} in {meta['elapsed_s']:.0f} s")
    failed = [r for r in runs if not r.result["verified_ok"] and not no_data(r.result)]
    for run in failed[:10]:
        log(f"FAILED {run.target} {run.mode} {run.scenario}: {run.result.get('errors')}")
    return 1 if failed else 0


DESCRIBE = {
    "history": ("cpu_ms_per_run", "sent_messages", "stored_messages"),
    "burst": ("conv_per_s", "p99_ms", "cpu_ms_per_conv", "failures", "unfinished",
              "lag_p99_ms"),
    "early": ("step_ms", "bound_ms", "conversation_ms"),
    "cache": ("cached_share", "cached_share_after_trim", "requests"),
    "connections": ("new_connections", "requests"),
}


def measure_micro(settings: Settings, available: list[str]) -> dict[str, Any]:
    """Registration of 300 tools, `import kimi_agent` vs `import httpx2`, `kimi-agent --help`,
    each best of N fresh interpreters (bench.micro)."""
    if KIMI not in available:
        return {}
    repeats = settings.micro_repeats
    cpus, env = settings.client_cpus, child_env()
    log("registration, import and --help times")
    found: dict[str, Any] = {
        "registration": micro.registration(
            30 if settings.quick else 300, repeats, cpus, REPO_ROOT, env
        ),
        "imports": micro.imports(
            {"kimi_agent": "import kimi_agent", "httpx2": "import httpx2"}, repeats, cpus,
            REPO_ROOT, env,
        ),
        "cli_help": micro.cli_help(repeats, REPO_ROOT, env),
    }
    return found


def describe(
    index: int, total: int, spec: TargetSpec, mode: str, scenario: Scenario, repeat: int,
    result: dict[str, Any],
) -> str:
    head = f"{index + 1}/{total} {spec.name} {mode} {scenario.key} #{repeat + 1}:"
    if not result["verified_ok"]:
        return f"{head} FAILED {str(result.get('errors'))[:300]}"
    if result.get("unsupported"):
        return f"{head} not available: {result['unsupported'][:200]}"
    if scenario.kind in DESCRIBE:
        return f"{head} " + ", ".join(
            f"{name} {result[name]:.4g}" if isinstance(result.get(name), float)
            else f"{name} {result.get(name)}" for name in DESCRIBE[scenario.kind]
        )
    if scenario.kind == "memory":
        return (
            f"{head} {result['rss_kb_per_conv']:.1f} KB RSS, "
            f"{result['heap_kb_per_conv']:.1f} KB heap per conversation"
        )
    return (
        f"{head} {result['cpu_ms_per_conv']:.2f} ms CPU/conv, {result['conv_per_s']:.0f} conv/s,"
        f" p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )

