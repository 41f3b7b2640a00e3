"""`python -m examples.workflow [--data DIR] [--fresh] [--crash-after N]`.

Offline on the gateway simulator (playing `script.yaml`) unless `BYTESPIKE_API_KEY` is set.
The workflows' checkpoints live in `DIR/durable.sqlite` (DBOS's system database).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import anyio

from examples.workflow.workflow import WorkflowReport, run_workflow
from kimi_agent.durable import launch, shutdown


async def _main(args: argparse.Namespace) -> tuple[WorkflowReport, int | None]:
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    steps = 0

    def log(line: str) -> None:
        nonlocal steps
        print(line, flush=True)
        if line.lstrip().startswith("✓"):
            steps += 1
            if args.crash_after is not None and steps >= args.crash_after:
                print(f"💥 crashing after {steps} steps (run again to recover)", flush=True)
                os._exit(3)                               # a real crash: no clean-up at all

    if os.environ.get("BYTESPIKE_API_KEY"):
        print("在线：使用真实网关 (running on the real gateway)")
        launch(f"sqlite:///{data / 'durable.sqlite'}")
        try:
            return await run_workflow(data, log=log), None
        finally:
            shutdown()
    from examples.workflow.workflow import SCRIPT
    from kimi_agent.testing import GatewaySimulator

    print("离线：使用内置网关模拟器和脚本 (no API key — the simulator plays script.yaml)")
    sim = GatewaySimulator(script=SCRIPT)
    async with sim.serve() as base_url:
        os.environ["BYTESPIKE_BASE_URL"] = base_url
        os.environ["BYTESPIKE_API_KEY"] = sim.api_key
        launch(f"sqlite:///{data / 'durable.sqlite'}")   # recovers unfinished workflows
        try:
            return await run_workflow(data, log=log), len(sim.requests)
        finally:
            shutdown()
            del os.environ["BYTESPIKE_API_KEY"]


def main() -> int:
    from kimi_agent.cli.terminal import user_data_dir

    parser = argparse.ArgumentParser(prog="python -m examples.workflow")
    parser.add_argument("--data", default=str(user_data_dir() / "workflow"),
                        help="folder for the order database and the workflow checkpoints")
    parser.add_argument("--fresh", action="store_true", help="forget earlier workflows")
    parser.add_argument("--crash-after", type=int, default=None,
                        help="kill this process after N steps (rehearse a crash, then run "
                             "again)")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.data, ignore_errors=True)
    report, model_calls = anyio.run(_main, args)
    for message_id, result in report.results.items():
        action = result.get("action") or {}
        print(f"\n{message_id} 工单 {action.get('ticket_id')}：{result.get('reply')}")
    if model_calls is not None:
        print(f"\n本次运行调用模型 {model_calls} 次 (model calls in this run: {model_calls})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
