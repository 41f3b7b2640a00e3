"""The workflow API on real DBOS (SQLite, in this process): steps retried by their policy
and failing the workflow with a typed error, an agent step with structured output, a branch
and a human-approval step decided while the workflow waits."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from kimi_agent import Agent, GatewayClient
from kimi_agent.durable import (
    Approval,
    DurableConfigurationError,
    Flow,
    RetryPolicy,
    StepRetriesExhaustedError,
    Workflow,
    WorkflowFailedError,
    launch,
)
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

CALLS: Counter[str] = Counter()
GATEWAY: dict[str, str] = {}


def gateway() -> GatewayClient:
    return GatewayClient(GATEWAY["url"], GATEWAY["key"])


class Refund(BaseModel):
    order_id: str
    amount: int
    reason: str


def flaky(name: str, failures: int) -> str:
    """Fails `failures` times, then answers."""
    CALLS[name] += 1
    if CALLS[name] <= failures:
        raise ConnectionError(f"{name}：仓库系统暂时不可用（第 {CALLS[name]} 次）")
    return f"{name} 完成"


retrying = Workflow("test-retrying", client=gateway)


@retrying.main
async def retrying_flow(flow: Flow, failures: int, attempts: int) -> str:
    value: str = await flow.step("库存同步", flaky, f"sync-{failures}-{attempts}", failures,
                                 retry=RetryPolicy(attempts=attempts, backoff=0.01))
    return value


refunds = Workflow("test-refunds", client=gateway)
EXTRACT: Agent[Refund] = Agent(instructions="从留言中提取退款申请。", output_type=Refund)


def pay_out(order_id: str, amount: int) -> str:
    CALLS[f"pay-{order_id}"] += 1
    return f"已向订单 {order_id} 退款 {amount} 元"


@refunds.main
async def refund_flow(flow: Flow, text: str) -> dict[str, Any]:
    refund = await flow.agent("提取", EXTRACT, text)
    if refund.amount > 100:                                     # a branch: big ones wait
        decision: Approval = await flow.approval("主管审批", refund.model_dump())
        if not decision.approved:
            return {"status": "rejected", "note": decision.note}
    paid = await flow.step("付款", pay_out, refund.order_id, refund.amount)
    return {"status": "paid", "result": paid}


def extractor(request: SimRequest) -> Reply:
    amount = 500 if "500" in request.last_user_text else 30
    order = "A1" if amount == 500 else "B2"
    return Reply(text=f'{{"order_id": "{order}", "amount": {amount}, "reason": "商品破损"}}')


async def test_a_step_retries_by_its_policy_then_fails_the_workflow_typed(
        dbos_sqlite_url: str) -> None:
    launch(dbos_sqlite_url)
    ok = await retrying.start(2, 3)
    assert await retrying.result(ok, timeout=30) == "sync-2-3 完成"
    assert CALLS["sync-2-3"] == 3
    bad = await retrying.start(5, 3)
    with pytest.raises(StepRetriesExhaustedError) as caught:
        await retrying.result(bad, timeout=30)
    assert CALLS["sync-5-3"] == 3                        # three attempts, not one more
    assert caught.value.step == "库存同步" and caught.value.attempts == 3
    assert "仓库系统暂时不可用（第 3 次）" in caught.value.last_error
    again = await retrying.start(5, 3, workflow_id=bad)   # the same id: not run again
    assert again == bad and CALLS["sync-5-3"] == 3


async def test_agent_step_branch_and_approval(dbos_sqlite_url: str) -> None:
    sim = GatewaySimulator(responder=extractor)
    async with sim.serve() as url:
        GATEWAY.update(url=url, key=sim.api_key)
        launch(dbos_sqlite_url)
        small = await refunds.start("订单 B2 的杯子碎了，退 30 元")
        assert await refunds.result(small, timeout=30) == {
            "status": "paid", "result": "已向订单 B2 退款 30 元"}
        big = await refunds.start("订单 A1 的显示器破损，申请退款 500 元")
        details = None
        with anyio.fail_after(30):
            while details is None:
                details = await Workflow.pending(big, "主管审批")
                await anyio.sleep(0.05)
        assert details == {"order_id": "A1", "amount": 500, "reason": "商品破损"}
        assert CALLS["pay-A1"] == 0
        await Workflow.decide(big, "主管审批", approved=True, note="同意")
        await Workflow.decide(big, "主管审批", approved=True, note="同意")  # delivered once
        assert await refunds.result(big, timeout=30) == {
            "status": "paid", "result": "已向订单 A1 退款 500 元"}
        assert await Workflow.pending(big, "主管审批") is None
    assert CALLS["pay-A1"] == 1
    assert len(sim.requests) == 2
    assert sim.requests[0].body["response_format"]["type"] == "json_schema"


async def test_cancel_and_resume_from_the_command_line(dbos_sqlite_url: str) -> None:
    """`kimi-agent workflows cancel` stops a waiting workflow; `resume` puts it back, this
    process (a launched worker) picks it up, and it finishes once decided."""
    sim = GatewaySimulator(responder=extractor)
    async with sim.serve() as url:
        GATEWAY.update(url=url, key=sim.api_key)
        launch(dbos_sqlite_url)
        big = await refunds.start("订单 A1 的显示器破损，申请退款 500 元")
        with anyio.fail_after(30):
            while await Workflow.pending(big, "主管审批") is None:
                await anyio.sleep(0.05)
        cli = [sys.executable, "-m", "kimi_agent.cli", "workflows", "--db", dbos_sqlite_url]
        cancelled = await anyio.run_process([*cli, "cancel", big], check=False)
        assert cancelled.returncode == 0, cancelled.stderr
        with pytest.raises(WorkflowFailedError, match="cancelled"):
            await refunds.result(big, timeout=30)
        resumed = await anyio.run_process([*cli, "resume", big], check=False)
        assert resumed.returncode == 0, resumed.stderr
        await Workflow.decide(big, "主管审批", approved=False, note="金额过大，转人工")
        assert await refunds.result(big, timeout=60) == {
            "status": "rejected", "note": "金额过大，转人工"}
    assert len(sim.requests) == 1                      # the extraction was not asked again


def test_bad_policies_and_names_are_refused() -> None:
    with pytest.raises(DurableConfigurationError):
        RetryPolicy(attempts=0)
    with pytest.raises(DurableConfigurationError):
        Workflow("test-refunds")
