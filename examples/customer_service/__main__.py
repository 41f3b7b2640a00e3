"""`python -m examples.customer_service`: one conversation with the shop bot, printed plainly.

Offline (no `BYTESPIKE_API_KEY`) the model is the gateway simulator playing the shop's
scripted model; with a key, the same code talks to the real gateway. The refund waits for
approval and is approved here as the human agent would, then the conversation continues.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio
from kimi_agent_tools.demo import build_agent, make_deps
from kimi_agent_tools.demo.scenario import FIRST_VISIT

from kimi_agent import GatewayClient, SQLiteSession


async def converse(client: GatewayClient, folder: Path) -> None:
    agent = build_agent(client)
    deps, _ = make_deps(folder / "orders.db", latency=False)
    async with SQLiteSession("customer-u1001", folder / "sessions.db") as session:
        for prompt in FIRST_VISIT:
            print(f"顾客：{prompt}")
            result = await agent.run(prompt, deps=deps, session=session)
            while result.pending_approvals:           # a person approves the refund
                for call in result.pending_approvals:
                    print(f"  [审批] {call.tool} {call.arguments} → 批准")
                result = await agent.resume(
                    session, deps=deps, approved=[p.call_id for p in result.pending_approvals])
            print(f"客服：{result.output or '（已转人工）'}  [{result.status}]\n")


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="kimi-shop-"))
    if os.environ.get("BYTESPIKE_API_KEY"):
        async with GatewayClient() as client:
            await converse(client, folder)
        return
    from kimi_agent_tools.demo.scenario import shop_responder

    from kimi_agent.testing import GatewaySimulator

    sim = GatewaySimulator(responder=shop_responder)
    async with sim.serve() as base_url, GatewayClient(api_key=sim.api_key,
                                                     base_url=base_url) as client:
        await converse(client, folder)


if __name__ == "__main__":
    anyio.run(main)
