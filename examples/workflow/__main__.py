"""`python -m examples.workflow [--data DIR] [--fresh] [--stop-after N]`.

Offline on the gateway simulator (playing `script.yaml`) unless `BYTESPIKE_API_KEY` is set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import anyio

from examples.workflow.workflow import SCRIPT, StopRequested, WorkflowReport, run_workflow
from kimi_agent import GatewayClient
from kimi_agent.cli.terminal import usage_summary, user_data_dir


async def _main(args: argparse.Namespace) -> WorkflowReport:
    data = Path(args.data)
    if os.environ.get("BYTESPIKE_API_KEY"):
        print("在线：使用真实网关 (running on the real gateway)")
        async with GatewayClient() as client:
            return await run_workflow(client, data, stop_after=args.stop_after)
    from kimi_agent.testing import GatewaySimulator

    print("离线：使用内置网关模拟器和脚本 (no API key — the simulator plays script.yaml)")
    sim = GatewaySimulator(script=SCRIPT)
    async with sim.serve() as base_url, GatewayClient(base_url, sim.api_key) as client:
        return await run_workflow(client, data, stop_after=args.stop_after)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.workflow")
    parser.add_argument("--data", default=str(user_data_dir() / "workflow"),
                        help="folder for the order database and the checkpoints")
    parser.add_argument("--fresh", action="store_true", help="forget earlier checkpoints")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after N steps (rehearse a crash, then run again)")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.data, ignore_errors=True)
    try:
        report = anyio.run(_main, args)
    except StopRequested as stop:
        print(f"⏹ {stop}. 再次运行会从检查点继续 (run again to resume).")
        return 3
    for message_id, result in report.results.items():
        action = result.get("action") or {}
        print(f"\n{message_id} 工单 {action.get('ticket_id')}：{result.get('reply')}")
    print()
    print(usage_summary(report.usage, report.models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
