"""The simulator's schema oracle is independent of the client's dialect check, so they can
disagree — and where the client accepts what Moonshot's validator refuses, these tests say so.

The raw schemas are ones issue 12 found: walle (and so the simulator) refuses them, the
client registers them and would send them. The simulator side passes; the client side is
marked as a known client bug until the client's dialect refuses them at registration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kimi_agent import Tool
from kimi_agent.errors import ToolDefinitionError
from kimi_agent.testing import GatewaySimulator

RAW_SCHEMAS_WALLE_REFUSES = {
    "required names a missing property": (
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["date"]},
        "required property 'date' is not defined in properties",
    ),
    "a property named required": (
        {"type": "object", "properties": {"required": {"type": "boolean"}}},
        "property name 'required' is reserved for JSON Schema keywords",
    ),
    "a boolean with a string enum": (
        {"type": "object", "properties": {"urgent": {"type": "boolean", "enum": ["是", "否"]}}},
        "enum value (是) does not match any type in [boolean]",
    ),
    "an enum on an array": (
        {"type": "object", "properties": {"tags": {"type": "array", "enum": ["a", "b"]}}},
        "enum value (a) does not match any type in [array]",
    ),
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    sim = GatewaySimulator()
    async with (
        sim.serve() as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"x-api-key": sim.api_key}) as client,
    ):
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(RAW_SCHEMAS_WALLE_REFUSES))
async def test_the_simulator_refuses_the_raw_schema_in_walles_words(
    http: httpx.AsyncClient, case: str
) -> None:
    schema, details = RAW_SCHEMAS_WALLE_REFUSES[case]
    tool = {"type": "function", "function": {"name": "lookup", "parameters": schema}}
    body: dict[str, Any] = {
        "model": "kimi-k2-6",
        "messages": [{"role": "user", "content": "查一下"}],
        "tools": [tool],
    }
    response = await http.post("/chat/completions", json=body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "is not a valid moonshot flavored json schema" in message and details in message


@pytest.mark.parametrize("case", sorted(RAW_SCHEMAS_WALLE_REFUSES))
def test_the_client_refuses_the_raw_schema_at_registration(case: str) -> None:
    schema, _ = RAW_SCHEMAS_WALLE_REFUSES[case]
    with pytest.raises(ToolDefinitionError):
        Tool.from_schema("lookup", "查询。", schema, lambda **_: "ok")


def _typed_tools() -> list[Any]:
    """Tools whose parameters make a schema generator reach for keywords walle's default
    level refuses: formats, constants, tuples, exclusive bounds, patterns, unique items."""
    import datetime
    from typing import Annotated, Literal

    from pydantic import Field

    from kimi_agent import tool

    @tool
    def book(
        day: datetime.date,
        seats: Annotated[int, Field(gt=0, lt=10)],
        kind: Literal["经济舱"],
        span: tuple[int, int],
        code: Annotated[str, Field(pattern=r"^[A-Z]{2}\d+$")],
        tags: set[str],
    ) -> str:
        """订票。"""
        return "ok"

    return [book]


@pytest.mark.anyio
async def test_generated_schemas_are_accepted_by_the_simulator_at_strict() -> None:
    from kimi_agent import Agent, GatewayClient
    from kimi_agent.testing import Reply

    sim = GatewaySimulator(responder=lambda _: Reply(reasoning="好。", text="好的。"))
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        result = await Agent(tools=_typed_tools(), client=client).run("订一张票")
    assert result.output == "好的。"
    assert sim.last_request.ok


@pytest.mark.anyio
async def test_generated_schemas_pass_walles_default_level() -> None:
    from kimi_agent import Agent, GatewayClient
    from kimi_agent.testing import Reply
    from kimi_agent.testing._walle import validate

    sim = GatewaySimulator(responder=lambda _: Reply(reasoning="好。", text="好的。"))
    async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
        await Agent(tools=_typed_tools(), client=client).run("订一张票")
    for sent in sim.last_request.tools:
        assert validate(sent["function"]["parameters"], "ultra") is None
