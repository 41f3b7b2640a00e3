"""Pytest fixtures for the real components the tests use, all on 127.0.0.1 (a pytest plugin,
registered by `tests/conftest.py`).

Servers (session-scoped, started on first use, stopped when the session ends):
- `postgres_server` / `postgres_url`: PostgreSQL from the `pgserver` wheel.
- `redis_server` / `redis_url`: `redis-server` (Debian package), nothing persisted.
Per test:
- `postgres_database`: the URL of a fresh empty database on the shared server, dropped after.
- `make_postgres_server()` / `make_redis_server(persistent=True)`: private servers a test may
  `stop()`, `crash()` and `start()` again (same port, same data) for "server restarted" tests.
- `dbos_sqlite_url` / `dbos_postgres_url`: a DBOS system database (a SQLite file in the test's
  tmp dir / a fresh PostgreSQL database); DBOS's global instance is destroyed after the test.
- `chromium_executable`: Debian's Chromium; `browser` / `page` (async, for `anyio` tests) and
  `sync_browser` (for plain tests) are playwright objects driving it headless.
- `screenshots`: saves PNGs as test artifacts under `tests/artifacts/` (or $KIMI_TEST_ARTIFACTS).
- `mcp_server_time_command`: the argv that runs the `mcp-server-time` MCP server over stdio.

A missing component FAILS the test with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import importlib
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import (
    INSTALL_HINT,
    PIP_HINT,
    PostgresServer,
    RedisServer,
    ServiceFailed,
    ServiceMissing,
)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("KIMI_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))

# Flags for Chromium on this closed network: no GPU, no sandbox (CI runs as root), and none of
# the background connections (updates, sync, QUIC) that the network refuses. Playwright adds
# --headless and a fresh temporary --user-data-dir for every launch itself.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync")

_names = itertools.count(1)
_saved: list[Path] = []


def _need(module: str, package: str) -> Any:
    """Import `module` or fail the test saying which package (from the dev extra) is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{package} is not installed ({exc}): {PIP_HINT}", pytrace=False)


def _started(make: Callable[[], Any]) -> Any:
    try:
        server = make()
        server.start()
    except (ServiceMissing, ServiceFailed) as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


# -- PostgreSQL -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; tests must not stop it (use
    `make_postgres_server` for one to restart)."""
    server: PostgresServer = _started(PostgresServer)
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql://postgres@127.0.0.1:PORT/postgres` on the shared server."""
    return postgres_server.url()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the shared server, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_names)}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def make_postgres_server() -> Iterator[Callable[[], PostgresServer]]:
    """A factory of private, started PostgreSQL servers, removed after the test."""
    made: list[PostgresServer] = []

    def make() -> PostgresServer:
        server: PostgresServer = _started(PostgresServer)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.remove()


# -- Redis ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis server for the whole session (nothing persisted); tests must not stop it."""
    folder = tmp_path_factory.mktemp("redis")
    server: RedisServer = _started(lambda: RedisServer(folder))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """`redis://127.0.0.1:PORT/0` on the shared server."""
    return redis_server.url


@pytest.fixture
def make_redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A factory of private, started Redis servers, stopped after the test.

    `make_redis_server(persistent=True)` fsyncs every write, so data survives `stop()`,
    `crash()` and `restart()`.
    """
    made: list[RedisServer] = []

    def make(*, persistent: bool = False) -> RedisServer:
        folder = tmp_path / f"redis-{len(made) + 1}"
        server: RedisServer = _started(lambda: RedisServer(folder, persistent=persistent))
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


# -- DBOS -------------------------------------------------------------------------------------

@pytest.fixture
def dbos_reset() -> Iterator[None]:
    """Destroy DBOS's process-global instance before and after the test.

    The registry of decorated functions is kept (`destroy_registry=False`), so workflows
    registered when a module is imported stay registered for the next test.
    """
    dbos = _need("dbos", "dbos (the `durable` extra)")
    dbos.DBOS.destroy()
    try:
        yield
    finally:
        dbos.DBOS.destroy()


@pytest.fixture
def dbos_sqlite_url(tmp_path: Path, dbos_reset: None) -> str:
    """A DBOS system database URL on a SQLite file in the test's tmp dir (DBOS creates it)."""
    return f"sqlite:///{tmp_path / 'dbos.sqlite'}"


@pytest.fixture
def dbos_postgres_url(postgres_database: str, dbos_reset: None) -> str:
    """A DBOS system database URL: a fresh database on the shared PostgreSQL server."""
    _need("dbos", "dbos (the `durable` extra)")
    return postgres_database


# -- Chromium and playwright ------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The path of Debian's Chromium ($KIMI_TEST_CHROMIUM overrides), checked to run."""
    path = os.environ.get("KIMI_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(f"chromium is not installed: {INSTALL_HINT}", pytrace=False)
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{path} --version failed: {done.stderr.strip()} ({INSTALL_HINT})",
                    pytrace=False)
    return path


def _launch_options(executable: str) -> dict[str, Any]:
    return {"executable_path": executable, "headless": True, "args": list(CHROMIUM_ARGS),
            "timeout": 60_000}


def _context_options() -> dict[str, Any]:
    return {"locale": "zh-CN", "timezone_id": "Asia/Shanghai",
            "viewport": {"width": 1280, "height": 800}}


@pytest.fixture
async def browser(chromium_executable: str, anyio_backend: str) -> AsyncIterator[Any]:
    """A headless Chromium driven by playwright's async API, for `@pytest.mark.anyio` tests.

    Launched per test: playwright's sync and async drivers both hold an event loop, so a
    session-wide browser would break every later asyncio test.
    """
    api = _need("playwright.async_api", "playwright")
    async with api.async_playwright() as pw:
        launched = await pw.chromium.launch(**_launch_options(chromium_executable))
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A page in a fresh context (zh-CN, Asia/Shanghai, 1280×800) of `browser`."""
    context = await browser.new_context(**_context_options())
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
def sync_browser(chromium_executable: str) -> Iterator[Any]:
    """Headless Chromium through playwright's sync API, for plain (non-async) tests only.

    Use `browser` in async tests: the sync API refuses to run inside an event loop.
    """
    api = _need("playwright.sync_api", "playwright")
    with api.sync_playwright() as pw:
        launched = pw.chromium.launch(**_launch_options(chromium_executable))
        try:
            yield launched
        finally:
            launched.close()


class Screenshots:
    """Saves screenshots of playwright pages into one folder per test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: list[Path] = []

    def _path(self, name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "-", name).strip("-") or "shot"
        path = self.folder / f"{len(self.saved) + 1:02d}-{stem}.png"
        self.saved.append(path)
        _saved.append(path)
        return path

    async def take(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        """Screenshot an async playwright page; returns the PNG's path."""
        path = self._path(name)
        await page.screenshot(path=str(path), full_page=full_page)
        return path

    def take_sync(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        """Screenshot a sync playwright page; returns the PNG's path."""
        path = self._path(name)
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """Screenshots saved to tests/artifacts/<test module>/<test name>/ (emptied first); the
    paths are listed at the end of the pytest run."""
    module = Path(str(request.node.path)).stem
    test = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
    folder = ARTIFACTS / module / test
    shutil.rmtree(folder, ignore_errors=True)
    return Screenshots(folder)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        terminalreporter.write_sep("-", f"{len(_saved)} screenshots saved under {ARTIFACTS}")
        for path in _saved:
            terminalreporter.write_line(str(path))


# -- MCP --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mcp_server_time_command() -> list[str]:
    """argv that starts `mcp-server-time` (from PyPI) as an MCP server on stdio."""
    _need("mcp_server_time", "mcp-server-time")
    return [sys.executable, "-m", "mcp_server_time", "--local-timezone", "Asia/Shanghai"]

