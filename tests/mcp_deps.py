"""A deps factory for `kimi-agent mcp serve --deps tests.mcp_deps:shop`: the demo shop on the
SQLite file named by $KIMI_AGENT_TEST_DB (seeded with the demo orders)."""

from __future__ import annotations

import os

from kimi_agent_tools import ShopDeps
from kimi_agent_tools.demo.bot import make_deps


def shop() -> ShopDeps:
    return make_deps(os.environ["KIMI_AGENT_TEST_DB"], latency=False)[0]
