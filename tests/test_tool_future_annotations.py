"""Tools in a module with `from __future__ import annotations`: every annotation is a string.

`RunContext[Deps]` must be recognised (and hidden from the model) even when `Deps` exists only
for the type checker; classes local to the function that defines a tool must resolve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from kimi_agent import RunContext, tool
from kimi_agent.errors import ToolDefinitionError

if TYPE_CHECKING:
    from collections.abc import Sequence

    class Shop:  # never exists at run time
        name: str


@tool
def refund(ctx: RunContext[Shop], order_id: str,
           amount: Annotated[float, Field(gt=0, description="金额（元）")]) -> str:
    """退款。

    Args:
        order_id: 订单号。
    """
    return order_id


@tool
def bare(context: RunContext, query: str) -> str:  # type: ignore[type-arg]
    return query


def test_context_with_an_unresolvable_deps_type_is_hidden() -> None:
    assert refund.context_param == "ctx"
    assert refund.parameters["properties"] == {
        "order_id": {"type": "string", "description": "订单号。"},
        "amount": {"type": "number", "description": "金额（元） (greater than 0)"},
    }
    assert refund.parse_arguments('{"order_id": "A1", "amount": "2.5"}') == {
        "order_id": "A1", "amount": 2.5}


def test_bare_context_string_annotation() -> None:
    assert bare.context_param == "context"
    assert list(bare.parameters["properties"]) == ["query"]


def test_local_classes_resolve() -> None:
    class Query(BaseModel):
        text: str
        limit: int = 3

    @tool
    def search(ctx: RunContext[Shop], q: Query) -> str:
        return q.text

    assert search.parse_arguments('{"q": {"text": "退货"}}') == {"q": Query(text="退货")}


def test_a_name_that_cannot_be_resolved_is_reported() -> None:
    def lookup(items: Sequence[str]) -> None: ...

    try:
        tool(lookup)
    except ToolDefinitionError as error:
        assert "parameter 'items'" in str(error)
        assert "'Sequence[str]'" in str(error)
    else:  # pragma: no cover
        raise AssertionError("expected ToolDefinitionError")
