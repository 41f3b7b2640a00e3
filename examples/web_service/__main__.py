"""`python -m examples.web_service [--port 8000] [--data DIR] [--store URL] [--concurrency N]`:
the shop's site with the bot.

On one host the conversations live in SQLite in `--data` (the default). To run several
processes, on one host or several, give them all the same `--store postgresql://…` (or
`redis://…`) and the same `KIMI_AGENT_WEB_SECRET` / `KIMI_AGENT_STAFF_KEY`, each its own
`--port`, behind a load balancer: any process serves any request (see app.py's docstring
for what is shared). `--concurrency N` is the gateway account's cap on requests in flight,
shared by all the processes through that store's server.

Without `BYTESPIKE_API_KEY` the model is the gateway simulator (the demo's scripted shop
model), started in a background thread; uvicorn serves the app and, on Ctrl-C, lets answers
under way finish before both stop. Open the printed address: the shop's page with the chat
widget; the staff console is at /support/staff (the staff key is printed too).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from examples.web_service.app import PREFIX, create_app
from kimi_agent.errors import ConfigurationError


@contextlib.contextmanager
def _gateway() -> Iterator[tuple[str | None, str | None]]:
    if os.environ.get("BYTESPIKE_API_KEY"):
        print("在线：使用真实网关 (running on the real gateway)")
        yield None, None
        return
    from kimi_agent_tools.demo.scenario import shop_responder

    from kimi_agent.testing import GatewaySimulator, Latency

    sim = GatewaySimulator(responder=shop_responder,
                           latency=Latency(first_token=0.1, tokens_per_second=200))
    with sim.serve_in_thread() as base_url:
        print(f"离线：使用内置网关模拟器 {base_url} (no API key — running on the simulator)")
        yield base_url, sim.api_key


def _default_data() -> Path:
    home = os.environ.get("KIMI_AGENT_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".local" / "share" / "kimi-agent"
    return base / "web_service"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.web_service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", default=str(_default_data()))
    parser.add_argument("--store", default=None,
                        help="where conversations live: postgresql://…, redis://…, "
                             "sqlite:///PATH or memory (default: sessions.db in --data)")
    parser.add_argument("--concurrency", type=int, default=None, metavar="N",
                        help="the gateway account's cap on requests in flight (shared by "
                             "every process on a PostgreSQL/Redis store)")
    parser.add_argument("--limiter-key", dest="limiter_key", default=None,
                        help="the shared cap's key (default: from a hash of the API key)")
    args = parser.parse_args()
    with _gateway() as (base_url, api_key):
        try:
            app = create_app(args.data, base_url=base_url, api_key=api_key, latency=True,
                             secret=os.environ.get("KIMI_AGENT_WEB_SECRET"),
                             staff_key=os.environ.get("KIMI_AGENT_STAFF_KEY"),
                             store_url=args.store, concurrency=args.concurrency,
                             limiter_key=args.limiter_key)
        except ConfigurationError as error:
            parser.error(str(error))
        print(f"工作台 staff console: {PREFIX}/staff   staff key: {app.state.staff_key}")
        uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
