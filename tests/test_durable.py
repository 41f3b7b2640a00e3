"""Durable runs on DBOS, in real worker processes killed with SIGKILL.

The simulator runs here and counts every request by its point (`model:cI:S`); the workers
(`tests/durable_worker.py`) run DBOS on a SQLite file or PostgreSQL. A kill happens while
the worker is stopped at a chosen point — the model's reply held back by the responder, or a
tool hanging before its side effect — so the test knows exactly which call each kill
interrupted: that call runs again after the restart, every other call exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from tests.durable_worker import model_key, reply_for, schedule

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent


class Model:
    """The responder: counts requests per point, can hold one point back, counts in-flight."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.block: str | None = None
        self.reached = anyio.Event()
        self.release = anyio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.lock = anyio.Lock()

    async def __call__(self, request: SimRequest) -> Reply:
        key = model_key(request)
        async with self.lock:
            self.counts[key] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if key == self.block:
                self.reached.set()
                await self.release.wait()
            if self.delay:
                await anyio.sleep(self.delay)
            return reply_for(request)
        finally:
            async with self.lock:
                self.in_flight -= 1

    def hold(self, key: str | None) -> None:
        self.block = key
        self.reached = anyio.Event()
        self.release.set()
        self.release = anyio.Event()


@pytest.fixture
def workers() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `tests.durable_worker` processes (output in files); all killed after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KIMI_AGENT_HOME": str(log.parent)}
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tests.durable_worker", *args],
                                    cwd=ROOT, env=env, stdout=out, stderr=out)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


async def wait_exit(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        while proc.poll() is None:
            await anyio.sleep(0.05)
    assert proc.returncode == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def effects(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, n FROM effects").fetchall())


CONVS = 8


class Zygote:
    """A pre-imported `tests.durable_worker zygote` that forks the workers of the kill test."""

    def __init__(self, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KIMI_AGENT_HOME": str(log.parent)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.durable_worker", "zygote"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True)

    def fork(self, *args: str, log: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([list(args), str(log)]) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def finished(pid: int, out: Path, log: Path, timeout: float = 60) -> Any:
    """Wait for the forked worker `pid` to write `out` and exit."""
    with anyio.fail_after(timeout):
        while alive(pid):
            await anyio.sleep(0.02)
    assert out.exists(), log.read_text(encoding="utf-8", errors="replace")[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    forks = Zygote(tmp_path / "zygote.log")
    try:
        yield forks
    finally:
        forks.close()


async def test_a_worker_killed_30_times_pays_each_completed_call_once(
        tmp_path: Path, zygote: Zygote) -> None:
    model = Model()
    sim = GatewaySimulator(responder=model)
    async with sim.serve() as url:
        common = ["run", "--url", url, "--key", sim.api_key, "--convs", str(CONVS)]
        # the uninterrupted run
        ref_effects, ref_log = tmp_path / "ref.db", tmp_path / "ref.log"
        pid = zygote.fork(*common, "--db", f"sqlite:///{tmp_path / 'ref-dbos.sqlite'}",
                          "--effects", str(ref_effects), "--out", str(tmp_path / "ref.json"),
                          "--sessions", str(tmp_path / "ref-sessions.db"), log=ref_log)
        uninterrupted = await finished(pid, tmp_path / "ref.json", ref_log)
        reference = uninterrupted["answers"]
        assert uninterrupted["sessions"]["c1"] == [
            "user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
        assert set(model.counts.values()) == {1} and len(model.counts) == 3 * CONVS
        assert set(effects(ref_effects).values()) == {1}

        # 30 kills at random points, each while the worker is stopped there
        model.counts.clear()
        points = schedule(CONVS)
        # blocking one of the two parallel calls of step 1 lets the other finish, so only
        # one of them (alternating) is a place to stop at
        places = [i for i, p in enumerate(points)
                  if not p.endswith("-s1-b" if int(p.split("c")[-1][0]) % 2 else "-s1-a")]
        kills = sorted(random.Random(18).sample(places, 30))
        db = f"sqlite:///{tmp_path / 'dbos.sqlite'}"
        out, fx, log = tmp_path / "out.json", tmp_path / "effects.db", tmp_path / "w.log"
        ready = tmp_path / "ready"
        common += ["--sessions", str(tmp_path / "sessions.db")]
        killed: Counter[str] = Counter()
        for index in kills:
            point = points[index]
            ready.unlink(missing_ok=True)
            model.hold(point if point.startswith("model:") else None)
            pid = zygote.fork(*common, "--db", db, "--effects", str(fx), "--out", str(out),
                              "--block", point, "--ready", str(ready), log=log)
            with anyio.fail_after(60):
                while not (model.reached.is_set() or ready.exists()):
                    assert alive(pid), (point, log.read_text(encoding="utf-8")[-3000:])
                    await anyio.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            with anyio.fail_after(10):
                while alive(pid):
                    await anyio.sleep(0.01)
            killed[point] += 1
        model.hold(None)
        assert not out.exists()
        pid = zygote.fork(*common, "--db", db, "--effects", str(fx), "--out", str(out),
                          log=log)
        recovered = await finished(pid, out, log)
        answers = recovered["answers"]

    assert sum(killed.values()) == 30
    assert answers == reference
    # the sessions, written per step and rewound on recovery, agree with the workflows
    assert recovered["sessions"] == uninterrupted["sessions"]
    assert "会话 c3 完成" in answers["c3"]
    # a model reply held back by a kill was never delivered: that call alone ran twice
    model_points = [p for p in points if p.startswith("model:")]
    assert {p: model.counts[p] for p in model_points} == {
        p: 1 + killed[p] for p in model_points}
    # a tool killed before its side effect ran it once, after the restart
    assert effects(fx) == {p.removeprefix("tool:"): 1 for p in points if p.startswith("tool:")}
    assert not sim.errors


async def test_an_approval_from_another_process_resumes_the_waiting_run(
        tmp_path: Path, workers: Callable[..., subprocess.Popen[bytes]]) -> None:
    model = Model()
    sim = GatewaySimulator(responder=model)
    db = f"sqlite:///{tmp_path / 'dbos.sqlite'}"
    fx, pending, result, log = (tmp_path / "effects.db", tmp_path / "pending.json",
                                tmp_path / "result.json", tmp_path / "w.log")
    async with sim.serve() as url:
        common = ["--db", db, "--url", url, "--key", sim.api_key, "--effects", str(fx)]
        waiting = workers("refund-start", *common, "--out", str(pending), "--result",
                          str(result), "--executor", "shop", log=log)
        with anyio.fail_after(60):
            while not pending.exists():
                assert waiting.poll() is None, log.read_text(encoding="utf-8")[-3000:]
                await anyio.sleep(0.05)
        call_ids = json.loads(pending.read_text(encoding="utf-8"))
        assert len(call_ids) == 1
        kill(waiting)                                # the process waiting on approval dies
        assert effects(fx) == {}
        cli = [sys.executable, "-m", "kimi_agent.cli", "workflows", "--db", db]
        listed = subprocess.run([*cli, "list", "--json"], capture_output=True, text=True,
                                encoding="utf-8", timeout=60, cwd=ROOT)
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(r["workflow_id"], r["status"]) for r in rows] == [("refund-1", "PENDING")]
        wrong = subprocess.run([*cli, "approve", "refund-1", "--approve", "no-such-call"],
                               capture_output=True, text=True, encoding="utf-8", timeout=60,
                               cwd=ROOT)
        assert wrong.returncode == 1 and "not pending" in wrong.stderr
        approver = workers("approve", *common, "--workflow", "refund-1", "--approve",
                           call_ids[0], "--executor", "approver", "--out",
                           str(tmp_path / "approved.json"), log=log)
        await wait_exit(approver, log)
        restarted = workers("refund-start", *common, "--out", str(tmp_path / "again.json"),
                            "--result", str(result), "--executor", "shop", log=log)
        await wait_exit(restarted, log)
    assert json.loads(result.read_text(encoding="utf-8"))["answer"] == \
        "退款结果：订单 R1 已退款"
    assert effects(fx) == {"refund-R1": 1}
    listed = subprocess.run([*cli, "list", "--status", "SUCCESS"], capture_output=True,
                            text=True, encoding="utf-8", timeout=60, cwd=ROOT)
    assert "refund-1" in listed.stdout and "kimi_agent.run:durable-test" in listed.stdout
    assert model.counts == {"model:?:0": 1, "model:?:1": 1}


async def test_two_workers_on_postgresql_share_a_queue_of_200_runs_5_at_a_time(
        tmp_path: Path, workers: Callable[..., subprocess.Popen[bytes]],
        dbos_postgres_url: str) -> None:
    model = Model()
    model.delay = 0.05
    sim = GatewaySimulator(responder=model)
    async with sim.serve() as url:
        common = ["queue", "--db", dbos_postgres_url, "--url", url, "--key", sim.api_key,
                  "--effects", str(tmp_path / "effects.db"), "--runs", "200"]
        one = workers(*common, "--enqueue", "--executor", "w1", "--out",
                      str(tmp_path / "w1.json"), log=tmp_path / "w1.log")
        two = workers(*common, "--executor", "w2", "--out", str(tmp_path / "w2.json"),
                      log=tmp_path / "w2.log")
        await wait_exit(one, tmp_path / "w1.log", timeout=200)
        await wait_exit(two, tmp_path / "w2.log", timeout=200)
    executed = [json.loads((tmp_path / f"w{i}.json").read_text())["executed"] for i in (1, 2)]
    assert sum(executed) == 200 and min(executed) > 0       # both workers took a share
    assert sum(model.counts.values()) == 200 and set(model.counts.values()) == {1}
    assert model.max_in_flight <= 5
    assert model.max_in_flight >= 2                          # they did overlap
