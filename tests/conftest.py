"""Shared fixtures: tests run on asyncio through anyio's pytest plugin; the real servers
(PostgreSQL, Redis, Chromium, DBOS, MCP peers) come from the `tests._services` plugin."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests._services"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
