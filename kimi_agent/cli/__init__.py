"""The `kimi-agent` command: `demo`, `chat`, `tools`, `simulate`.

`main(argv)` is the entry point. `kimi_agent.cli.terminal` is the public rendering of a run
in a terminal, shared by `kimi-agent chat` and the demo.
"""

from __future__ import annotations

from kimi_agent.cli._main import main

__all__ = ["main"]
