"""Figures timed in fresh interpreters: tool registration, `import`, `kimi-agent --help`.

Each figure is the best (minimum) of N fresh processes, after one unmeasured run that warms
the OS cache and writes the bytecode caches: the minimum is the figure least disturbed by
other processes on a shared machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TIMEOUT_S = 60.0

REGISTRATION_CODE = r'''
import os, sys, time
from typing import Literal
cpus = {cpus!r}
cpus and os.sched_setaffinity(0, cpus)
from kimi_agent import ToolRegistry, tool

KINDS = [
    ("key: str", "key: The key to look up."),
    ("count: int, verbose: bool = False", "count: How many.\n        verbose: Say more."),
    ("city: str, days: int = 3", "city: 城市名称，例如上海。\n        days: 预报天数。"),
    ("ids: list[str], limit: int | None = None", "ids: The ids.\n        limit: At most."),
    ("unit: Literal['c', 'f'], value: float", "unit: The unit.\n        value: The value."),
]
functions = []
for i in range({n}):
    params, args = KINDS[i % len(KINDS)]
    source = (
        f"async def tool_{{i}}({{params}}) -> str:\n"
        f'    """Tool number {{i}}: does thing {{i}} for the user.\n\n'
        f"    Args:\n        {{args}}\n"
        f'    """\n'
        f"    return 'ok'\n"
    )
    namespace = {{"Literal": Literal}}
    exec(source, namespace)
    functions.append(namespace[f"tool_{{i}}"])
t = time.perf_counter()
registry = ToolRegistry.of([tool(f) for f in functions])
schemas = registry.schemas()
elapsed = time.perf_counter() - t
assert len(schemas) == {n}, len(schemas)
print(elapsed)
'''

IMPORT_CODE = (
    "import os, time\n"
    "cpus = {cpus!r}\n"
    "cpus and os.sched_setaffinity(0, cpus)\n"
    "t = time.perf_counter()\n"
    "{statement}\n"
    "print(time.perf_counter() - t)\n"
)


def _python(code: str, cwd: Path, env: dict[str, str]) -> tuple[float | None, str]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_S:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        return None, lines[-1][:300]
    return float(done.stdout.strip().splitlines()[-1]), ""


def best_of(code: str, repeats: int, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run `code` (which prints seconds) once unmeasured, then `repeats` times: the minimum."""
    samples: list[float] = []
    for attempt in range(repeats + 1):
        value, error = _python(code, cwd, env)
        if value is None:
            return {"ok": False, "error": error}
        if attempt:
            samples.append(value * 1000)
    return {"ok": True, "best_ms": min(samples), "samples_ms": samples}


def registration(n: int, repeats: int, cpus: set[int] | None, cwd: Path,
                 env: dict[str, str]) -> dict[str, Any]:
    """`ToolRegistry.of([tool(f) for f in fns]).schemas()` for `n` generated functions."""
    code = REGISTRATION_CODE.format(n=n, cpus=sorted(cpus) if cpus else None)
    found = best_of(code, repeats, cwd, env)
    found["tools"] = n
    return found


def imports(statements: dict[str, str], repeats: int, cpus: set[int] | None, cwd: Path,
            env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Best-of-N import time of each statement, interleaved so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in statements}
    errors: dict[str, str] = {}
    for attempt in range(repeats + 1):
        for name, statement in statements.items():
            if name in errors:
                continue
            code = IMPORT_CODE.format(cpus=sorted(cpus) if cpus else None, statement=statement)
            value, error = _python(code, cwd, env)
            if value is None:
                errors[name] = error
            elif attempt:
                samples[name].append(value * 1000)
    result: dict[str, dict[str, Any]] = {}
    for name, statement in statements.items():
        if name in errors:
            result[name] = {"ok": False, "error": errors[name], "statement": statement}
        else:
            result[name] = {"ok": True, "best_ms": min(samples[name]),
                            "samples_ms": samples[name], "statement": statement}
    return result


def _wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float | None, str]:
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return None, str(exc)[:300]
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        return None, lines[-1][:300]
    return elapsed, ""


def cli_help(repeats: int, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Wall time of `kimi-agent --help` (the console script next to this interpreter) and,
    for scale, of the bare interpreter (`python -c pass`)."""
    script = Path(sys.executable).parent / "kimi-agent"
    command = [str(script)] if script.exists() else None
    if command is None and shutil.which("kimi-agent"):
        command = [str(shutil.which("kimi-agent"))]
    if command is None:
        return {"ok": False, "error": "the kimi-agent console script is not installed"}
    runs: dict[str, list[float]] = {"help": [], "python": []}
    for attempt in range(repeats + 1):
        for name, cmd in (("help", [*command, "--help"]),
                          ("python", [sys.executable, "-c", "pass"])):
            value, error = _wall(cmd, cwd, env)
            if value is None:
                return {"ok": False, "error": f"{' '.join(cmd)}: {error}"}
            if attempt:
                runs[name].append(value * 1000)
    return {
        "ok": True,
        "best_ms": min(runs["help"]),
        "python_best_ms": min(runs["python"]),
        "samples_ms": runs["help"],
        "command": " ".join(os.path.basename(c) for c in command) + " --help",
    }
