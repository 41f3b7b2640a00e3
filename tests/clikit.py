"""Helpers for tests that drive the `kimi-agent` command as a subprocess.

The child runs with this interpreter (`sys.executable -m kimi_agent.cli`), from the repository
root with it on `PYTHONPATH` (so `examples` and `tools` import), without any gateway key
(so it is offline on the simulator), with its per-user data directory in a temporary folder,
UTF-8 output and no colours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BYTESPIKE_API_KEY", "BYTESPIKE_BASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env["KIMI_AGENT_HOME"] = str(home)
    return env


def run_cli(home: Path, *args: str, stdin: str | None = None, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`kimi-agent ARGS...` to completion; stdout and stderr captured as text. `env` adds
    variables (e.g. a gateway key and URL) to the test environment."""
    return subprocess.run(
        [sys.executable, "-m", "kimi_agent.cli", *args], cwd=ROOT,
        env={**cli_env(home), **(env or {})},
        input=stdin, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def _default_sigint() -> None:
    # A child inherits an ignored SIGINT from a shell that started us in the background;
    # these tests need the default, as on a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class LiveCli:
    """A running `kimi-agent` (or `python -m module`) whose output is collected as it comes,
    to wait for markers. `env` adds variables (e.g. a gateway key and URL)."""

    def __init__(self, home: Path, *args: str, module: str = "kimi_agent.cli",
                 env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, env={**cli_env(home), **(env or {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint if os.name == "posix" else None,
        )
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := os.read(self.process.stdout.fileno(), 4096):
            with self._lock:
                self._buffer.extend(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            return self._buffer.decode("utf-8", errors="replace")

    def wait_for(self, marker: str, *, after: int = 0, timeout: float = 20) -> int:
        """Wait until `marker` appears at or after position `after`; returns its position."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.output.find(marker, after)
            if found >= 0:
                return found
            if self.process.poll() is not None:
                time.sleep(0.1)  # let the reader drain the pipe
                found = self.output.find(marker, after)
                if found >= 0:
                    return found
                raise AssertionError(f"exited ({self.process.returncode}) before {marker!r}:"
                                     f"\n{self.output}")
            time.sleep(0.02)
        raise AssertionError(f"no {marker!r} within {timeout} s:\n{self.output}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode("utf-8"))
        self.process.stdin.flush()

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30) -> int:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def __enter__(self) -> LiveCli:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
