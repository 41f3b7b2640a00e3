"""Serving the simulator: a real loopback server that starts and stops cleanly, in a thread
for synchronous code, and as `kimi-agent simulate` (`cli_simulate`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from kimi_agent.testing import GatewaySimulator

CHAT = {"model": "kimi-k2-6", "messages": [{"role": "user", "content": "你好"}]}


@pytest.mark.anyio
async def test_serve_on_a_free_loopback_port_and_stop_cleanly():
    threads = threading.active_count()
    tasks = len(asyncio.all_tasks())
    sim = GatewaySimulator()
    async with sim.serve() as first, sim.serve() as second:
        assert first.startswith("http://127.0.0.1:") and first.endswith("/v1")
        assert first != second  # each serve() picks its own free port
        async with httpx.AsyncClient(headers={"Authorization": "Bearer sim-key"}) as client:
            for base_url in (first, second):
                response = await client.post(f"{base_url}/chat/completions", json=CHAT)
                assert response.status_code == 200
    assert sim.base_url is None
    assert len(sim.requests) == 2
    assert threading.active_count() == threads  # no thread was started...
    assert len(asyncio.all_tasks()) == tasks  # ...and no task is left behind
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):  # the port is closed
            await client.post(f"{first}/chat/completions", json=CHAT)


@pytest.mark.anyio
async def test_stop_with_a_stream_in_flight():
    sim = GatewaySimulator()
    sim.inject("kimi-k2-6", kind="slow", delay=60)
    async with sim.serve() as base_url:
        async with httpx.AsyncClient(headers={"Authorization": "Bearer sim-key"}) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(f"{base_url}/chat/completions", json=CHAT, timeout=0.1)
    assert sim.requests[0].fault == "slow"


def test_serve_in_a_thread_for_synchronous_code():
    sim = GatewaySimulator()
    threads = threading.active_count()
    with sim.serve_in_thread() as base_url:
        assert sim.base_url == base_url
        response = httpx.post(
            f"{base_url}/chat/completions", json=CHAT, headers={"Authorization": "Bearer sim-key"}
        )
        assert response.status_code == 200
        assert "你好" in response.json()["choices"][0]["message"]["content"]
    assert threading.active_count() == threads
    assert sim.base_url is None


def test_cli_simulate_prints_url_and_key_and_stops_on_ctrl_c(tmp_path: Path):
    script = tmp_path / "hello.yaml"
    script.write_text("turns:\n  - text: 您好，我是模拟器。\n", encoding="utf-8")
    code = (  # as `kimi-agent simulate` calls it, with its argparse namespace
        "import argparse\n"
        "from kimi_agent.testing import cli_simulate\n"
        f"args = argparse.Namespace(port=0, host=None, script={str(script)!r}, api_key='cli-key')\n"
        "cli_simulate(args)\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        base_url = next(line.split("base URL:")[1].strip() for line in lines if "base URL:" in line)
        assert "API key:  cli-key" in output
        response = httpx.post(
            f"{base_url}/chat/completions", json=CHAT, headers={"Authorization": "Bearer cli-key"}
        )
        assert response.json()["choices"][0]["message"]["content"] == "您好，我是模拟器。"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
