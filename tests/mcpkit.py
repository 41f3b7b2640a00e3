"""Helpers for the MCP tests: the test server (tests/mcp_server.py) over stdio, streamable HTTP
or SSE, as real subprocesses on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from kimi_agent.mcp import MCPToolset

ROOT = Path(__file__).resolve().parent.parent


def stdio_toolset(**options: Any) -> MCPToolset:
    """The test server started by the toolset itself, over stdio."""
    return MCPToolset.stdio(sys.executable, ["-m", "tests.mcp_server", "stdio"], cwd=ROOT,
                            **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def http_server(transport: str = "http", port: int | None = None) -> AsyncIterator[str]:
    """The test server as its own process on loopback (a free port unless `port` is given);
    yields its URL."""
    port = port or free_port()
    process = await anyio.open_process(
        [sys.executable, "-m", "tests.mcp_server", transport, str(port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with anyio.fail_after(30):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                except OSError:
                    await anyio.sleep(0.05)
                    continue
                await stream.aclose()
                break
        path = "/sse" if transport == "sse" else "/mcp"
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


async def wait_disconnected(toolset: MCPToolset) -> None:
    """Until the toolset has noticed that its server is gone."""
    with anyio.fail_after(10):
        while toolset.connected:
            await anyio.sleep(0.01)
