"""A tiny smoke run of the benchmark harness: it runs, verifies every output, writes the table.

No timing assertions: speed is checked in `python -m bench`, never in unit tests. The peer
frameworks come from the optional `bench` extra: with it installed their smoke run must
verify; without it (CI's dev install) the harness must report them as skipped, with the
reason, and still write its tables. Nothing here skips itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FLOORS = ["httpx"] + (["httpx2"] if importlib.util.find_spec("httpx2") else [])


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str, Any]:
    out = tmp_path / "RESULTS.md"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert out.exists(), done.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return done, out.read_text(encoding="utf-8"), data


def assert_verified(data: Any, targets: set[str]) -> None:
    ran = {run["target"] for run in data["runs"]}
    assert targets <= ran, (targets - ran, data["skipped"])
    for run in data["runs"]:
        result = run["result"]
        assert result["verified_ok"], (run["target"], run["mode"], run["scenario"], result)
        if result.get("unsupported"):  # a feature this kimi-agent lacks: "not available"
            assert run["target"] == "kimi-agent[read_only]", run
            continue
        assert result["verified"] > 0, run
        if not result.get("tolerate_failures"):
            assert result["completed"] == result["verified"], run


@pytest.mark.timeout(170)
def test_smoke_floor_and_kimi_agent(tmp_path: Path) -> None:
    done, markdown, data = run_bench(
        tmp_path, "--targets", *FLOORS, "kimi-agent", "kimi-agent[read_only]"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kimi-agent" not in data["skipped"], data["skipped"]
    assert_verified(data, {*FLOORS, "kimi-agent", "kimi-agent[read_only]"})
    scenarios = {run["scenario"] for run in data["runs"]}
    assert scenarios == {
        "c1", "c50", "c200", "tools200", "memory", "conn10", "h10m", "h10s", "h100m",
        "h100s", "s100m", "s100s", "f20", "early", "cache",
    }
    assert {run["mode"] for run in data["runs"]} == {"plain", "stream"}
    for heading in (
        "## Targets (issue 14)", "## Earlier targets (issue 8)", "## Non-streamed",
        "## Streamed", "## CPU per run with a stored history", "## Conversations in flight",
        "## Tools that start while the reply streams", "## Prompt cache", "## New connections",
        "## Registration, import and start-up", "## Import time",
    ):
        assert heading in markdown
    assert "| httpx | httpx |" in markdown
    assert "**FAIL**" not in markdown
    by_key = {(r["target"], r["mode"], r["scenario"]): r["result"] for r in data["runs"]}
    # The honest floor reads every streamed body to its end: no new connection after the first.
    assert by_key[("httpx2", "stream", "conn10")]["new_connections"] == 0
    # The hand-written loop sent the very request kimi-agent sent (captured at the gateway).
    assert by_key[("httpx2", "plain", "h100m")]["history_source"] == "captured"
    assert (by_key[("httpx2", "plain", "h100m")]["sent_messages"]
            == by_key[("kimi-agent", "plain", "h100m")]["sent_messages"])
    # The cache model saw every request of the long conversation, Chinese results and all.
    cache = by_key[("kimi-agent", "plain", "cache")]
    assert cache["requests"] == 2 * cache["turns"]
    assert 0 < cache["cached_share"] <= 1
    assert data["micro"]["registration"]["ok"] and data["micro"]["imports"]["httpx2"]["ok"]


@pytest.mark.timeout(120)
def test_smoke_peers(tmp_path: Path) -> None:
    done, markdown, data = run_bench(
        tmp_path, "--targets", "openai-agents", "pydantic-ai", "--scenarios", "c1", "conn10"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # each peer runs when its package is installed (the dev extra has openai-agents, the
    # bench extra both); one that is not is named as not installed instead of failing
    installed = {name for name, module in (("openai-agents", "agents"),
                                           ("pydantic-ai", "pydantic_ai"))
                 if importlib.util.find_spec(module) is not None}
    if installed:
        assert_verified(data, installed)
    for name in installed:
        assert f"| {name} |" in markdown
    missing = {"openai-agents", "pydantic-ai"} - installed
    assert set(data["skipped"]) == missing, data["skipped"]
    assert all("not installed" in why for why in data["skipped"].values())
    for name in missing:
        assert f"- {name}: not installed" in markdown
