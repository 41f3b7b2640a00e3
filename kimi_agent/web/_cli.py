"""`kimi-agent serve [MODULE:ATTR] [--host --port --store URL --concurrency N]`: an agent on
the web.

`MODULE:ATTR` names either an `Agent` or a function that makes one from a
`GatewayClient` (`build_agent(client)`), which may also return `(agent, deps)` with `deps`
a function of the `Customer` giving the deps of their runs. Without a target the demo shop
bot is served. Without `BYTESPIKE_API_KEY` the model is the gateway simulator playing the
demo's scripted shop model (`shop_responder`), like `kimi-agent demo`.

The customer-token secret and the staff key come from `--secret`/`--staff-key` or
`KIMI_AGENT_WEB_SECRET`/`KIMI_AGENT_STAFF_KEY`; without them fresh random ones are made
and printed (fine for trying it, not for production: tokens die with the process). The
command prints a widget address with a token for the demo customer and the staff key.

`--store` names where conversations live: `sqlite:///PATH` (default: web.db in the user data
dir) or `memory` for one host; `postgresql://…` or `redis://…` for several replicas (on
several hosts) sharing the conversations, the conversation book (hand-offs, approvals, the
runs under way on every replica) and, with `--concurrency N`, one gateway cap through the
same server (a `PostgresLimiter` / `RedisLimiter` keyed by a hash of the API key, or by
`--limiter-key`). With SQLite or memory, `--concurrency` caps this process alone.

Ctrl-C (SIGINT) or SIGTERM shut down gracefully: no new connections, and answers under way
finish (up to `--grace` seconds) before the process exits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

DEMO_TARGET = "kimi_agent_tools.demo.bot:build_agent"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` command to an argparse sub-parsers object."""
    serve = subparsers.add_parser(
        "serve", help="serve an agent on the web: API, chat widget and staff console",
        description="Serve an agent over HTTP with the Chinese chat widget (/widget) and the "
                    "staff console (/staff).")
    serve.add_argument("target", nargs="?", default=None,
                       help="MODULE:ATTR: an Agent, or a function of a GatewayClient that "
                            "returns an Agent or (agent, deps) (default: the demo shop bot)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--store", default=None,
                       help="where conversations live: sqlite:///PATH (default: web.db in "
                            "the user data dir), memory, or for several replicas "
                            "postgresql://… or redis://…[?prefix=P&lock_ttl=S]")
    serve.add_argument("--concurrency", type=int, default=None, metavar="N",
                       help="the gateway account's cap on requests in flight; with a "
                            "PostgreSQL/Redis store it is shared by every replica")
    serve.add_argument("--limiter-key", dest="limiter_key", default=None,
                       help="the shared cap's key (default: derived from a hash of the API "
                            "key, so replicas of one account share it)")
    serve.add_argument("--run-lease", dest="run_lease", type=float, default=15.0,
                       metavar="SECONDS",
                       help="how long a run marker outlives a replica that stopped renewing "
                            "it (killed mid-run) (default: 15)")
    serve.add_argument("--secret", default=None,
                       help="customer-token secret (default: $KIMI_AGENT_WEB_SECRET, else a "
                            "random one)")
    serve.add_argument("--staff-key", dest="staff_key", default=None,
                       help="staff key (default: $KIMI_AGENT_STAFF_KEY, else a random one)")
    serve.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                       help="an origin allowed to call the API from a browser (repeatable)")
    serve.add_argument("--grace", type=float, default=30.0,
                       help="seconds that shutting down waits for answers under way")
    return serve  # type: ignore[no-any-return]


def _data_dir() -> Path:
    home = os.environ.get("KIMI_AGENT_HOME")
    if home:
        return Path(home).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kimi-agent"


def store_url(url: str | None) -> str:
    """The store URL `--store` means: the default SQLite file, a SQLite URL with its path
    made absolute (and its folder created), or a shared store's URL as given.

    Raises:
        ConfigurationError: none of the accepted forms.
    """
    from kimi_agent.web._backend import check_store_url

    if url is not None and check_store_url(url) in ("postgres", "redis"):
        return url
    path = store_path(url)
    return "memory" if path == ":memory:" else f"sqlite:///{path}"


def store_path(url: str | None) -> str:
    """The SQLite path of a `--store` URL.

    Raises:
        ValueError: the URL is not `sqlite:///PATH`, `sqlite://:memory:` or `memory`.
    """
    if url is None:
        path = _data_dir() / "web.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)
    if url in ("memory", "sqlite://:memory:", "sqlite:///:memory:"):
        return ":memory:"
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):]).expanduser()
        if not url.startswith("sqlite:////") and not path.is_absolute():
            path = Path.cwd() / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)
    raise ValueError(f"--store must be sqlite:///PATH or memory here, not {url!r}")


def load_target(target: str) -> Any:
    """The object `MODULE:ATTR` names.

    Raises:
        ValueError: the module cannot be imported or has no such attribute.
    """
    module_name, colon, attr = target.partition(":")
    if not colon or not attr:
        raise ValueError(f"give the target as MODULE:ATTR, not {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r}: {error}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None


def _demo_deps(data: Path) -> Callable[[Any], Any]:
    tools = importlib.import_module("kimi_agent_tools")
    bot = importlib.import_module("kimi_agent_tools.demo.bot")
    shared, _ = bot.make_deps(data, customer_id=None, latency=True)

    def deps(customer: Any) -> Any:
        return tools.ShopDeps(shared.order_store, shared.knowledge_base,
                        customer_id=customer.customer_id,
                        handoff_queues=shared.handoff_queues)
    return deps


def _build(target: str | None, client: Any, store: str) -> tuple[Any, Callable[[Any], Any] | None]:
    from kimi_agent import Agent

    made = load_target(target or DEMO_TARGET)
    deps: Callable[[Any], Any] | None = None
    if not isinstance(made, Agent):
        if not callable(made):
            raise ValueError(f"{target} is neither an Agent nor a function that makes one")
        made = made(client)
        if isinstance(made, tuple):
            made, deps = made
    if not isinstance(made, Agent):
        raise ValueError(f"{target} did not give an Agent (got {type(made).__name__})")
    if target is None:
        orders = Path(store[len("sqlite:///"):]).with_name("web-shop.db") \
            if store.startswith("sqlite:///") else _data_dir() / "web-shop.db"
        orders.parent.mkdir(parents=True, exist_ok=True)
        deps = _demo_deps(orders)
    return made, deps


@asynccontextmanager
async def _gateway(live: bool, concurrency: Any = None) -> AsyncIterator[Any]:
    from kimi_agent import GatewayClient

    if live:
        async with GatewayClient(concurrency=concurrency) as client:
            print(f"在线：使用网关 {client.base_url} (BYTESPIKE_API_KEY is set)")
            yield client
        return
    try:
        from kimi_agent.testing import GatewaySimulator, Latency
    except ImportError:
        raise ValueError("offline serving needs the simulator: pip install 'kimi-agent[sim]' "
                         "(or set BYTESPIKE_API_KEY)") from None
    scenario = importlib.import_module("kimi_agent_tools.demo.scenario")
    sim = GatewaySimulator(responder=scenario.shop_responder,
                           latency=Latency(first_token=0.12, tokens_per_second=200))
    async with sim.serve() as base_url:
        # an Agent that makes its own client reads these: point it at the simulator too
        os.environ["BYTESPIKE_BASE_URL"] = base_url
        os.environ["BYTESPIKE_API_KEY"] = sim.api_key
        print(f"离线：使用内置网关模拟器 {base_url}（脚本化的网店模型 — no API key, running on "
              "the simulator）")
        async with GatewayClient(base_url, sim.api_key, concurrency=concurrency) as client:
            yield client


async def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from kimi_agent.web import WebOptions, create_app, mint_customer_token
    from kimi_agent.web._backend import open_backend

    secret = args.secret or os.environ.get("KIMI_AGENT_WEB_SECRET") or secrets.token_urlsafe(32)
    staff_key = (args.staff_key or os.environ.get("KIMI_AGENT_STAFF_KEY")
                 or secrets.token_urlsafe(24))
    options = WebOptions(secret=secret, staff_key=staff_key, cors_origins=tuple(args.cors),
                         shutdown_grace=args.grace, run_lease=args.run_lease,
                         title="小象优选 · 在线客服" if args.target is None else "在线客服",
                         greeting="您好！我是小象优选的智能客服小象，请问有什么可以帮您？"
                         if args.target is None else WebOptions.greeting)
    url = store_url(args.store)
    live = bool(os.environ.get("BYTESPIKE_API_KEY"))
    backend = open_backend(url, concurrency=args.concurrency, limiter_key=args.limiter_key,
                           api_key=os.environ.get("BYTESPIKE_API_KEY"))
    try:
        async with _gateway(live, backend.concurrency) as client:
            agent, deps = _build(args.target, client, url)
            app = create_app(agent, backend.store, options, deps=deps, book=backend.book)
            config = uvicorn.Config(app, lifespan="on", log_level="info",
                                    timeout_graceful_shutdown=max(1, round(args.grace)))
            server = _server_class()(config)
            listener = _listen(args.host, args.port)
            host, port = listener.getsockname()[:2]
            root = f"http://{host}:{port}"
            token = mint_customer_token(secret, "u1001", ttl=12 * 3600)
            shared = "，多副本共享 shared by replicas" if backend.shared else ""
            cap = "" if args.concurrency is None else f"   网关并发上限 concurrency: " \
                f"{args.concurrency}{' (shared)' if backend.shared else ''}"
            print(f"会话存储 store: {backend.where}{shared}{cap}")
            print(f"顾客窗口 widget (demo customer u1001): {root}/widget#token={token}")
            print(f"工作台 staff console: {root}/staff   staff key: {staff_key}", flush=True)
            with listener:
                await server.serve(sockets=[listener])
            print("已停止：进行中的回答都已完成。Stopped; answers under way were finished.")
    finally:
        await backend.aclose()


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a Ctrl-C or SIGTERM it has handled gracefully is not
        raised again once it has shut down: the command then exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()
    return Server


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one), bound before serving so the
    printed addresses are the real ones."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error}") from None
    listener.set_inheritable(True)
    return listener


def run(args: argparse.Namespace) -> int:
    """The body of `kimi-agent serve`; returns the exit status (2 for a `--store` or
    `--concurrency` that cannot work, said on stderr).

    Raises:
        ValueError: a bad target (reported by the CLI as an error).
    """
    try:
        import uvicorn  # noqa: F401

        import kimi_agent.web  # noqa: F401
    except ImportError as error:
        print(f"kimi-agent serve needs the web extra: pip install 'kimi-agent[web]' ({error})",
              file=sys.stderr)
        return 2
    import anyio

    from kimi_agent.errors import ConfigurationError
    from kimi_agent.web._backend import check_store_url

    try:
        kind = check_store_url(store_url(args.store))
        if args.concurrency is not None and args.concurrency < 1:
            raise ConfigurationError(f"--concurrency must be at least 1, not {args.concurrency}")
    except (ConfigurationError, ValueError) as error:
        print(f"kimi-agent serve: --store / --concurrency: {error}", file=sys.stderr)
        return 2
    driver = {"postgres": ("psycopg_pool", "postgres"), "redis": ("redis", "redis")}.get(kind)
    if driver is not None:
        try:
            importlib.import_module(driver[0])
        except ImportError as error:
            print(f"kimi-agent serve --store {kind}: needs the {driver[1]} extra: pip install "
                  f"'kimi-agent[web,{driver[1]}]' ({error})", file=sys.stderr)
            return 2
    anyio.run(_serve, args)
    return 0
