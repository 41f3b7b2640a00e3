"""`python -m examples.web_service [--port 8000] [--data DIR]`: serve the shop bot over HTTP.

Without `BYTESPIKE_API_KEY` the model is the gateway simulator (the demo's scripted shop
model), started in a background thread; uvicorn serves the app and stops both cleanly on
Ctrl-C. Try:

    curl -s localhost:8000/customers/u1001/messages -H 'content-type: application/json' \\
         -d '{"message": "你好！我的订单 A1024 到哪了？"}'
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

import uvicorn

from examples.web_service.app import create_app
from kimi_agent.cli.terminal import user_data_dir


@contextlib.contextmanager
def _gateway() -> Iterator[tuple[str | None, str | None]]:
    if os.environ.get("BYTESPIKE_API_KEY"):
        print("在线：使用真实网关 (running on the real gateway)")
        yield None, None
        return
    from kimi_agent_tools.demo.scenario import shop_responder

    from kimi_agent.testing import GatewaySimulator

    sim = GatewaySimulator(responder=shop_responder)
    with sim.serve_in_thread() as base_url:
        print(f"离线：使用内置网关模拟器 {base_url} (no API key — running on the simulator)")
        yield base_url, sim.api_key


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.web_service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", default=str(user_data_dir() / "web_service"))
    args = parser.parse_args()
    with _gateway() as (base_url, api_key):
        app = create_app(args.data, base_url=base_url, api_key=api_key)
        uvicorn.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
