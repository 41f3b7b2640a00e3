"""A tiny smoke run of the benchmark harness: it runs, verifies every output, writes the table.

No timing assertions: speed is checked in `python -m bench`, never in unit tests. The peer
frameworks come from the optional `bench` extra; their part is skipped when it is missing.
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
PEERS_INSTALLED = all(importlib.util.find_spec(m) for m in ("agents", "pydantic_ai", "openai"))
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
        timeout=100,
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
        assert result["completed"] == result["verified"] > 0


@pytest.mark.timeout(120)
def test_smoke_floor_and_kimi_agent(tmp_path: Path) -> None:
    done, markdown, data = run_bench(tmp_path, "--targets", *FLOORS, "kimi-agent")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = set(FLOORS)
    if "kimi-agent" not in data["skipped"]:
        expected.add("kimi-agent")
    else:  # the harness says why, and the table says the kimi-agent rows are pending
        assert "Provisional" in markdown
    assert_verified(data, expected)
    scenarios = {run["scenario"] for run in data["runs"]}
    assert scenarios == {"c1", "c50", "c200", "tools200", "memory"}
    assert {run["mode"] for run in data["runs"]} == {"plain", "stream"}
    for heading in ("## Targets to reach", "## Non-streamed", "## Streamed", "## Import time"):
        assert heading in markdown
    assert "| httpx | httpx |" in markdown
    assert "**FAIL**" not in markdown


@pytest.mark.timeout(120)
@pytest.mark.skipif(not PEERS_INSTALLED, reason="peer frameworks (the bench extra) not installed")
def test_smoke_peers(tmp_path: Path) -> None:
    done, markdown, data = run_bench(
        tmp_path, "--targets", "openai-agents", "pydantic-ai", "--scenarios", "c1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_verified(data, {"openai-agents", "pydantic-ai"})
    assert "| openai-agents |" in markdown and "| pydantic-ai |" in markdown
