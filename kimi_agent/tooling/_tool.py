"""Tools: `Tool`, the `@tool` decorator, and `format_result`.

```python
@tool
async def get_order(order_id: str) -> dict:
    \"\"\"查询订单状态。

    Args:
        order_id: 订单号，例如 "A1024"。
    \"\"\"

@tool(timeout=5.0, requires_approval=True)
def refund(ctx: RunContext[Shop], order_id: str, amount: float) -> str: ...
```

Everything that can be worked out once is worked out when the tool is created: the schema
(normalised to Moonshot's dialect and checked), the `tools` entry of the request, the
pydantic model or jsonschema validator of the arguments, how to call the function. A call
then costs a JSON parse, a validation and the call itself. (`ToolRegistry` is in
`_registry.py`; the guide is docs/guides/tools.md.)
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, Unpack, overload

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from kimi_agent.errors import ToolDefinitionError
from kimi_agent.tooling._arguments import ArgumentParser, ModelArguments, SchemaArguments
from kimi_agent.tooling._dialect import check_tool_name
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._schema import find_context_param, function_schema, raw_schema

__all__ = ["Tool", "ToolOptions", "check_options", "format_result", "to_tool", "tool"]


class Tool:
    """A function the model can call, with its schema and everything needed to call it.

    A `Tool` stays callable exactly like the function it wraps (`get_order("A1")` returns
    the coroutine of an async function, a sync function returns its value), and keeps its
    `__name__`, `__doc__` and `__wrapped__`. Create one with `@tool`, `Tool(function, ...)`
    or, for a tool described by a raw JSON schema, `Tool.from_schema(...)`.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    timeout: float | None
    requires_approval: bool
    sequential: bool
    read_only: bool
    max_result_chars: int | None
    is_async: bool
    context_param: str | None
    definition: dict[str, Any]

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        requires_approval: bool = False,
        sequential: bool = False,
        read_only: bool = False,
        max_result_chars: int | None = None,
        localns: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe `function` from its signature and docstring (see `ToolOptions`).

        `localns` helps resolve string annotations that name classes not visible from the
        function's module (by default the locals of the function defining it are used).

        Raises:
            ToolDefinitionError: the function cannot be a tool (a parameter without a type
                or with one JSON cannot carry, a bad name or option), naming the culprit.
        """
        if name is not None:
            _check_name(name)
        spec = function_schema(function, name=name, description=description, localns=localns)
        self._setup(
            function, spec.name, spec.description, spec.parameters,
            ModelArguments(spec.name, spec.parameters, spec.model, spec.fields),
            context_param=spec.context_param, positional=spec.positional_only,
            options=_Options(timeout, requires_approval, sequential, read_only,
                             max_result_chars),
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        function: Callable[..., Any],
        *,
        timeout: float | None = None,
        requires_approval: bool = False,
        sequential: bool = False,
        read_only: bool = False,
        max_result_chars: int | None = None,
    ) -> Tool:
        """A tool declared with a raw JSON schema (e.g. one another service publishes).

        The schema is accepted when it passes walle's `strict` level (what Moonshot's server
        requires) once normalised: `parameters` holds the normalised form, which is what
        the model sees. The model's arguments are validated with jsonschema against the
        schema as given (so constraints the dialect moved into descriptions still hold) and
        passed to `function` as **keyword arguments**, unconverted (so `function(**arguments)`;
        give it `**kwargs` when the property names are not Python identifiers). A parameter
        of `function` annotated `RunContext` receives the run context, as with `@tool`.

        Raises:
            ToolDefinitionError: a bad name or option, a function that is not callable, or
                a schema the dialect refuses (walle's `At path '...': ...` reasons).
        """
        _check_name(name)
        if not callable(function):
            raise ToolDefinitionError(f"tool {name!r}: function {function!r} is not callable")
        ready = raw_schema(parameters, name)
        self = cls.__new__(cls)
        self._setup(
            function, name, description, ready.parameters,
            SchemaArguments(name, ready.parameters, ready.validation),
            context_param=find_context_param(function), positional=(),
            options=_Options(timeout, requires_approval, sequential, read_only,
                             max_result_chars),
        )
        self._raw_schema = parameters
        return self

    def _setup(
        self,
        function: Callable[..., Any],
        name: str,
        description: str,
        parameters: dict[str, Any],
        arguments: ArgumentParser,
        *,
        context_param: str | None,
        positional: tuple[str, ...],
        options: _Options,
    ) -> None:
        _check_name(name)
        timeout, limit = options.timeout, options.max_result_chars
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or timeout <= 0
        ):
            raise ToolDefinitionError(f"tool {name!r}: timeout must be a positive number of "
                                      f"seconds or None, got {timeout!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ToolDefinitionError(f"tool {name!r}: max_result_chars must be a positive "
                                      f"whole number of characters or None, got {limit!r}")
        if options.read_only and options.requires_approval:
            raise ToolDefinitionError(
                f"tool {name!r}: read_only=True says the tool may start before its step is "
                "complete and run twice; a tool that needs approval cannot")
        functools.update_wrapper(self, function)
        self.name = name
        self.description = description
        self.parameters = parameters
        self.function = function
        self.timeout = float(timeout) if timeout is not None else None
        self.requires_approval = bool(options.requires_approval)
        self.sequential = bool(options.sequential)
        self.read_only = bool(options.read_only)
        self.max_result_chars = limit
        self.is_async = _is_async(function)
        self.context_param = context_param
        self.definition = {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": parameters},
        }
        self._arguments = arguments
        self._positional = positional
        self._raw_schema: Mapping[str, Any] | None = None

    # ------------------------------------------------------------------ calling

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def parse_arguments(self, raw: str | None) -> dict[str, Any]:
        """The model's `arguments` string → validated, converted keyword arguments (without
        the context).

        Raises:
            ToolArgumentError: the arguments are not a JSON object or do not validate; the
                message is written for the model (each wrong field, expected and given).
        """
        return self._arguments.parse(raw)

    async def run(self, kwargs: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        """Call the function with `kwargs` (from `parse_arguments`) and `ctx` injected.

        Async functions are awaited; sync functions run in a daemon worker thread, so a slow
        one never blocks the event loop. If the caller is cancelled (e.g. by a timeout), a
        sync function's thread is abandoned: the run goes on, the thread finishes in the
        background, and it never keeps the process from exiting.

        Raises:
            TypeError: the tool takes a `RunContext` and `ctx` is None.
            Exception: whatever the function raises, as is.
        """
        if self.context_param is not None:
            if ctx is None:
                raise TypeError(f"tool {self.name!r} needs a RunContext ({self.context_param!r})")
            kwargs = {**kwargs, self.context_param: ctx}
        args: tuple[Any, ...] = ()
        if self._positional:
            kwargs = dict(kwargs)
            args = tuple(kwargs.pop(name) for name in self._positional if name in kwargs)
        if self.is_async:
            return await self.function(*args, **kwargs)
        from kimi_agent.tooling._threads import run_in_thread  # loads asyncio when first used

        result = await run_in_thread(self.function, *args, **kwargs)
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
            result = await result
        return result

    def __repr__(self) -> str:
        flags = "".join(
            f", {flag}=True" for flag in ("requires_approval", "sequential", "read_only")
            if getattr(self, flag)
        )
        timeout = f", timeout={self.timeout}" if self.timeout is not None else ""
        return f"Tool(name={self.name!r}{timeout}{flags})"


# --------------------------------------------------------------------------- @tool


class ToolOptions(TypedDict, total=False):
    """The options of `@tool(...)` and `@registry.tool(...)`.

    `name` defaults to the function's name, `description` to its docstring without the
    parameter / return / exception sections. `timeout` (seconds) is applied by the executor;
    `requires_approval` makes the run pause for a human decision before each call;
    `sequential` keeps the tool from running alongside other calls of the same step;
    `read_only` declares that a call changes nothing, so it may start before the model's
    reply is complete and may run twice (a retried reply); `max_result_chars` caps the text
    sent back to the model (default: the executor's, 100,000 characters).
    """

    name: str | None
    description: str | None
    timeout: float | None
    requires_approval: bool
    sequential: bool
    read_only: bool
    max_result_chars: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    timeout: float | None = None
    requires_approval: bool = False
    sequential: bool = False
    read_only: bool = False
    max_result_chars: int | None = None


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def tool(**options: Unpack[ToolOptions]) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    function: Callable[..., Any] | None = None, /, **options: Unpack[ToolOptions]
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a `Tool`: bare (`@tool`) or with `ToolOptions` (`@tool(timeout=5.0)`).

    Raises:
        TypeError: an unknown option.
        ToolDefinitionError: the function cannot be a tool (see `Tool`).
    """
    check_options(options)
    if function is not None:
        return to_tool(function, options)

    def decorate(function: Callable[..., Any]) -> Tool:
        return to_tool(function, options)

    return decorate


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse options `ToolOptions` does not define.

    Raises:
        TypeError: naming the unknown options.
    """
    unknown = set(options) - set(ToolOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown tool option(s): {', '.join(sorted(unknown))}")


def to_tool(obj: Callable[..., Any], options: ToolOptions) -> Tool:
    """`obj` as a Tool: a Tool as is (or rebuilt with `options`), a function wrapped.

    Raises:
        ToolDefinitionError: `obj` is not callable or cannot be a tool.
    """
    if not isinstance(obj, Tool):
        if not callable(obj):
            raise ToolDefinitionError(f"{obj!r} is not a function and cannot become a tool")
        return Tool(obj, **options)
    if not options:
        return obj
    merged: dict[str, Any] = {
        "name": obj.name, "description": obj.description, "timeout": obj.timeout,
        "requires_approval": obj.requires_approval, "sequential": obj.sequential,
        "read_only": obj.read_only, "max_result_chars": obj.max_result_chars,
        **{key: value for key, value in options.items() if value is not None},
    }
    if obj._raw_schema is not None:
        return Tool.from_schema(merged.pop("name"), merged.pop("description"),
                                obj._raw_schema, obj.function, **merged)
    return Tool(obj.function, **merged)


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise ToolDefinitionError(f"a tool name must be a string, got {name!r}")
    problem = check_tool_name(name)
    if problem:
        raise ToolDefinitionError(problem)


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    # a callable object with an `async def __call__`
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(
        type(function).__call__
    )


# --------------------------------------------------------------------------- results


def format_result(value: Any) -> str:
    """A tool's return value as the text of its tool message.

    Text as is; `None` → ""; dicts, lists, tuples, sets, pydantic models and dataclasses →
    compact JSON with non-ASCII text kept (``ensure_ascii=False``: Chinese stays Chinese),
    datetimes, UUIDs, decimals and enums as their JSON forms; anything else → `str(value)`.
    """
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return format_result(value.value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list | tuple | set | frozenset | BaseModel) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        try:
            return json.dumps(to_jsonable_python(value, fallback=str), ensure_ascii=False,
                              separators=(",", ":"))
        except (TypeError, ValueError):
            return str(value)
    return str(value)
