"""OpenTelemetry GenAI traces and metrics (issue 16), with the SDK's in-memory exporter and
metric reader: the expected spans, attributes and parentage for a streamed and a plain run
with two parallel tools and one fallback; content only when opted in; nothing when off."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import kimi_agent
from kimi_agent import Agent, MemorySession, ModelPrice, tool
from kimi_agent.models import KIMI_K2_5, ModelProfiles
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.tracing import Instrumentation, TraceSummary
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio

INNER = trace.get_tracer("tests.inner")


@tool
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单。

    Args:
        order_id: 订单号。
    """
    await anyio.sleep(0.05)
    return {"订单": order_id, "状态": "已发货"}


@tool
def get_shipping(order_id: str) -> str:
    """查询物流（同步工具，在线程里运行）。

    Args:
        order_id: 订单号。
    """
    with INNER.start_as_current_span("warehouse lookup"):   # a tool's own span
        time.sleep(0.05)
    return f"{order_id} 顺丰 SF123"


def responder(request: SimRequest) -> Reply:
    if request.tool_results:
        return Reply(text="您的订单已发货，顺丰 SF123。")
    return Reply(reasoning="两个一起查", tool_calls=[
        ("get_order", {"order_id": "A1024"}), ("get_shipping", {"order_id": "A1024"})])


EXPORTER = InMemorySpanExporter()
"""The process's one global tracer provider (it can be set once): a tool's own tracer
(`trace.get_tracer`) and the agent's instrumentation both export here."""
GLOBAL_PROVIDER = TracerProvider()
GLOBAL_PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(GLOBAL_PROVIDER)


def providers() -> tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider,
                         MeterProvider]:
    EXPORTER.clear()
    reader = InMemoryMetricReader()
    return EXPORTER, reader, GLOBAL_PROVIDER, MeterProvider(metric_readers=[reader])


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_run_with_parallel_tools_and_a_fallback_gives_the_genai_spans(
        streamed: bool) -> None:
    exporter, reader, tracer_provider, meter_provider = providers()
    sim = GatewaySimulator(responder=responder)
    sim.inject("kimi-k2-6", status=503, always=True)  # k2-6 keeps failing: k2-5 answers
    priced = ModelProfiles()
    priced.register(dataclasses.replace(KIMI_K2_5, price=ModelPrice(
        input=1.0, output=4.0, cached_input=0.2)), replace=True)
    instrumentation = Instrumentation(tracer_provider=tracer_provider,
                                      meter_provider=meter_provider)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_order, get_shipping], client=client, name="客服",
                      hooks=[instrumentation], profiles=priced)
        session = MemorySession("顾客-42")
        if streamed:
            async with agent.stream("A1024 到哪了？", session=session) as run:
                async for _ in run:
                    pass
            result = run.result
        else:
            result = await agent.run("A1024 到哪了？", session=session)
    spans = exporter.get_finished_spans()
    by_name = {s.name: s for s in spans}
    root = by_name["invoke_agent 客服"]
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.conversation.id"] == "顾客-42"
    assert root.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    chats = [s for s in spans if s.name.startswith("chat ")]
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert len(chats) == 2 and len(tools) == 2
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id
               for s in chats + tools)
    first, second = sorted(chats, key=lambda s: s.start_time)
    names = [e.name for e in first.events]             # k2-6's 503s: retried, then fell over
    assert names[-1] == "fallback" and "retry" in names and set(names[:-1]) <= {
        "retry", "attempt_failed"}
    assert first.events[-1].attributes["to_model"] == "kimi-k2-5"
    retry = next(e for e in first.events if e.name == "retry")
    assert retry.attributes["error.type"] == "ServerError"
    assert first.attributes["gen_ai.request.model"] == "kimi-k2-6"
    assert first.attributes["gen_ai.response.model"] == "kimi-k2-5"
    assert first.attributes["gen_ai.request.stream"] is streamed
    assert first.attributes["server.address"] == "127.0.0.1"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert "gen_ai.output.messages" not in first.attributes          # no content by default
    assert second.attributes["gen_ai.response.model"] == "kimi-k2-5"
    # the gateway's headers, as the client kept them on the call (never content)
    assert second.attributes["kimi_agent.gateway.request_id"] == result.steps[-1].call.request_id
    assert "kimi_agent.gateway.ratelimit.remaining_usd" in second.attributes
    assert second.attributes["kimi_agent.usage.cost_usd"] > 0
    assert root.attributes["kimi_agent.usage.cost_usd"] == pytest.approx(result.usage.cost)
    assert {s.attributes["gen_ai.tool.name"] for s in tools} == {"get_order", "get_shipping"}
    assert all(s.attributes["kimi_agent.tool.outcome"] == "ok" for s in tools)
    assert all("gen_ai.tool.call.arguments" not in s.attributes for s in tools)
    # k2-5 answered: its calls ran one after another; the tool's own span (in a worker
    # thread) nests under its execute_tool span
    a, b = sorted(tools, key=lambda s: s.start_time)
    assert a.end_time <= b.start_time
    inner = by_name["warehouse lookup"]
    assert inner.parent is not None and inner.parent.span_id == by_name[
        "execute_tool get_shipping"].context.span_id
    points = metric_points(reader)
    assert sum(p.count for p in points["gen_ai.client.token.usage"]) == 4   # in + out × 2
    assert sum(p.count for p in points["gen_ai.client.operation.duration"]) == 2
    assert sum(p.value for p in points["kimi_agent.fallbacks"]) >= 1
    assert sum(p.value for p in points["kimi_agent.tool_calls"]) == 2


async def test_parallel_tools_on_k2_6_overlap_as_spans() -> None:
    exporter, _, tracer_provider, meter_provider = providers()
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_order, get_shipping], client=client,
                      hooks=[Instrumentation(tracer_provider=tracer_provider,
                                             meter_provider=meter_provider,
                                             record_content=True)])
        await agent.run("A1024 到哪了？")
    tools = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    a, b = sorted(tools, key=lambda s: s.start_time)
    assert b.start_time < a.end_time                              # they overlap
    assert all("A1024" in s.attributes["gen_ai.tool.call.arguments"] for s in tools)
    assert any("已发货" in s.attributes["gen_ai.tool.call.result"] for s in tools)


async def test_errors_set_the_span_status_and_error_type() -> None:
    exporter, _, tracer_provider, meter_provider = providers()
    sim = GatewaySimulator(responder=responder)
    sim.inject(None, status=401, always=True)
    async with sim_client(sim) as client:
        agent = Agent(client=client, hooks=[Instrumentation(tracer_provider=tracer_provider,
                                                            meter_provider=meter_provider)])
        with pytest.raises(kimi_agent.ModelFailedError):
            await agent.run("你好")
    root = next(s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent"))
    assert root.status.status_code.name == "ERROR"
    assert root.attributes["error.type"] == "ModelFailedError"


async def test_instrument_traces_every_agent_and_uninstrument_stops() -> None:
    exporter, _, tracer_provider, meter_provider = providers()
    sim = GatewaySimulator(responder=lambda r: Reply(text="好的"))
    async with sim_client(sim) as client:
        agent = Agent(client=client)
        await agent.run("你好")
        assert exporter.get_finished_spans() == ()                # nothing when off
        kimi_agent.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        try:
            await agent.run("你好")
        finally:
            kimi_agent.tracing.uninstrument()
        traced = len(exporter.get_finished_spans())
        await agent.run("你好")
    assert traced == 2 and len(exporter.get_finished_spans()) == 2


def test_importing_kimi_agent_does_not_import_opentelemetry() -> None:
    code = ("import sys, kimi_agent\nfrom kimi_agent import Agent, tool\n"
            "print([m for m in sys.modules if m.startswith('opentelemetry')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


async def test_a_trace_summary_draws_the_run_tree() -> None:
    summary = TraceSummary()
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(tools=[get_order, get_shipping], client=client, name="客服",
                      hooks=[summary])
        await agent.run("A1024 到哪了？")
    text = summary.render()
    lines = text.splitlines()
    assert lines[0].startswith("invoke_agent 客服") and "2 requests" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == [
        "chat", "execute_tool", "execute_tool", "chat"] or len(lines) == 5


async def test_agent_instrument_true_uses_the_applications_providers() -> None:
    exporter, _, _, _ = providers()       # the global tracer provider is this module's
    sim = GatewaySimulator(responder=lambda r: Reply(text="好的"))
    async with sim_client(sim) as client:
        await Agent(client=client, name="客服", instrument=True).run("你好")
    assert [s.name for s in exporter.get_finished_spans()] == ["chat kimi-k2-6",
                                                               "invoke_agent 客服"]
