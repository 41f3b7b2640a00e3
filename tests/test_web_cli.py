"""`kimi-agent serve`: offline on the simulator with the demo shop bot, the widget and the
console served, and a graceful shutdown that lets an answer under way finish."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clikit import LiveCli, run_cli

pytestmark = pytest.mark.timeout(90)


def _addresses(server: LiveCli) -> tuple[str, str, str]:
    server.wait_for("staff key:")
    output = server.output
    widget = re.search(r"(http://\S+)/widget#token=(\S+)", output)
    key = re.search(r"staff key: (\S+)", output)
    assert widget is not None and key is not None, output
    return widget.group(1), widget.group(2), key.group(1)


def test_serve_runs_the_demo_bot_offline_and_shuts_down_gracefully(tmp_path: Path) -> None:
    store = tmp_path / "data" / "web.db"
    with LiveCli(tmp_path, "serve", "--port", "0", "--store", f"sqlite:///{store}",
                 "--grace", "20") as server:
        root, token, _ = _addresses(server)
        assert "离线：使用内置网关模拟器" in server.output
        assert httpx.get(f"{root}/widget").status_code == 200
        assert httpx.get(f"{root}/staff").status_code == 200
        config = httpx.get(f"{root}/api/config").json()
        assert config["title"] == "小象优选 · 在线客服"

        seen: list[dict[str, Any]] = []
        first = threading.Event()

        def ask() -> None:
            with httpx.stream("POST", f"{root}/api/conversation/messages", timeout=60,
                              json={"message": "我的订单 A1024 到哪了？"},
                              headers={"authorization": f"Bearer {token}"}) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        seen.append(json.loads(line[5:]))
                        first.set()

        reader = threading.Thread(target=ask)
        reader.start()
        assert first.wait(30)
        server.interrupt()                          # Ctrl-C while the answer streams
        reader.join(60)
        code = server.finish()
        output = server.output
    assert code == 0, output
    assert seen[0]["kind"] == "run_started"
    assert seen[-1]["kind"] == "done" and "SF1402938475612" in seen[-1]["output"], seen[-3:]
    assert "Application shutdown complete." in output and "Traceback" not in output
    assert store.exists() and (store.parent / "web-shop.db").exists()


def test_serve_takes_an_agent_factory_and_refuses_bad_targets(tmp_path: Path) -> None:
    with LiveCli(tmp_path, "serve", "kimi_agent_tools.demo.bot:build_agent", "--port", "0",
                 "--store", "memory", "--secret", "s" * 32, "--staff-key", "k" * 32
                 ) as server:
        root, _, staff_key = _addresses(server)
        assert staff_key == "k" * 32
        overview = httpx.get(f"{root}/api/staff/overview",
                             headers={"authorization": f"Bearer {staff_key}"})
        assert overview.json() == {"approvals": [], "handoffs": [], "running": []}
        server.interrupt()
        assert server.finish() == 0
    bad = run_cli(tmp_path, "serve", "no_such_module_here:agent", "--port", "0")
    assert bad.returncode == 1 and "cannot import module" in bad.stderr
    worse = run_cli(tmp_path, "serve", "--store", "mysql://db/shop", "--port", "0")
    assert worse.returncode == 2 and "--store" in worse.stderr, worse.stderr
    for form in ("memory", "sqlite:///PATH", "postgresql://", "redis://"):
        assert form in worse.stderr
    nothing = run_cli(tmp_path, "serve", "--concurrency", "0", "--port", "0")
    assert nothing.returncode == 2 and "--concurrency" in nothing.stderr
