"""Tools: `Tool`, the `@tool` decorator, `ToolRegistry`, and `format_result`.

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
then costs a JSON parse, a validation and the call itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import inspect
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias, TypedDict, Unpack, overload

import anyio.to_thread
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from kimi_agent.errors import DuplicateToolError, ToolDefinitionError, UnknownToolError
from kimi_agent.tooling._arguments import ArgumentParser, ModelArguments, SchemaArguments
from kimi_agent.tooling._dialect import check_tool_name
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._schema import find_context_param, function_schema, moonshot_schema
from kimi_agent.tooling._toolset import Toolset, warn_skipped

__all__ = ["Tool", "ToolOptions", "ToolRegistry", "ToolSource", "format_result", "tool"]


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
        localns: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe `function` from its signature and docstring (see `tool` for the options).

        `localns` helps resolve string annotations that name classes not visible from the
        function's module (by default the locals of the function defining it are used).
        """
        if name is not None:
            _check_name(name)
        spec = function_schema(function, name=name, description=description, localns=localns)
        self._setup(
            function, spec.name, spec.description, spec.parameters,
            ModelArguments(spec.name, spec.parameters, spec.model, spec.fields),
            context_param=spec.context_param, positional=spec.positional_only,
            timeout=timeout, requires_approval=requires_approval, sequential=sequential,
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
    ) -> Tool:
        """A tool declared with a raw JSON schema (e.g. one another service publishes).

        The schema is normalised to Moonshot's dialect and checked now; the model's arguments
        are validated against it with jsonschema and passed to `function` as **keyword
        arguments**, unconverted (so `function(**arguments)`; give it `**kwargs` when the
        property names are not Python identifiers). A parameter of `function` annotated
        `RunContext` receives the run context, as with `@tool`.
        """
        _check_name(name)
        if not callable(function):
            raise ToolDefinitionError(f"tool {name!r}: function {function!r} is not callable")
        normalised = moonshot_schema(parameters, name)
        self = cls.__new__(cls)
        self._setup(
            function, name, description, normalised, SchemaArguments(name, normalised),
            context_param=find_context_param(function), positional=(),
            timeout=timeout, requires_approval=requires_approval, sequential=sequential,
        )
        self._raw_schema = True
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
        timeout: float | None,
        requires_approval: bool,
        sequential: bool,
    ) -> None:
        _check_name(name)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or timeout <= 0
        ):
            raise ToolDefinitionError(f"tool {name!r}: timeout must be a positive number of "
                                      f"seconds or None, got {timeout!r}")
        functools.update_wrapper(self, function)
        self.name = name
        self.description = description
        self.parameters = parameters
        self.function = function
        self.timeout = float(timeout) if timeout is not None else None
        self.requires_approval = bool(requires_approval)
        self.sequential = bool(sequential)
        self.is_async = _is_async(function)
        self.context_param = context_param
        self.definition = {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": parameters},
        }
        self._arguments = arguments
        self._positional = positional
        self._raw_schema = False

    # ------------------------------------------------------------------ calling

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def parse_arguments(self, raw: str | None) -> dict[str, Any]:
        """The model's `arguments` string → validated, converted keyword arguments (without
        the context). Raises `ToolArgumentError` with a message written for the model."""
        return self._arguments.parse(raw)

    async def run(self, kwargs: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        """Call the function with `kwargs` (from `parse_arguments`) and `ctx` injected.

        Async functions are awaited; sync functions run in a worker thread, so a slow one
        never blocks the event loop. If the caller is cancelled (e.g. by a timeout), a sync
        function's thread is abandoned: the run goes on, the thread finishes in the background.
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
        result = await anyio.to_thread.run_sync(
            functools.partial(self.function, *args, **kwargs), abandon_on_cancel=True
        )
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
            result = await result
        return result

    def __repr__(self) -> str:
        flags = "".join(
            f", {flag}=True" for flag in ("requires_approval", "sequential") if getattr(self, flag)
        )
        timeout = f", timeout={self.timeout}" if self.timeout is not None else ""
        return f"Tool(name={self.name!r}{timeout}{flags})"


# --------------------------------------------------------------------------- @tool


class ToolOptions(TypedDict, total=False):
    """The options of `@tool(...)` and `@registry.tool(...)`.

    `name` defaults to the function's name, `description` to its docstring without the
    parameter / return / exception sections. `timeout` (seconds) is applied by the executor;
    `requires_approval` makes the run pause for a human decision before each call;
    `sequential` keeps the tool from running alongside other calls of the same step.
    """

    name: str | None
    description: str | None
    timeout: float | None
    requires_approval: bool
    sequential: bool


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def tool(**options: Unpack[ToolOptions]) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    function: Callable[..., Any] | None = None, /, **options: Unpack[ToolOptions]
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a `Tool`: bare (`@tool`) or with `ToolOptions` (`@tool(timeout=5.0)`)."""
    _check_options(options)
    if function is not None:
        return _to_tool(function, options)

    def decorate(function: Callable[..., Any]) -> Tool:
        return _to_tool(function, options)

    return decorate


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = set(options) - set(ToolOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown tool option(s): {', '.join(sorted(unknown))}")


def _to_tool(obj: Callable[..., Any], options: ToolOptions) -> Tool:
    if not isinstance(obj, Tool):
        if not callable(obj):
            raise ToolDefinitionError(f"{obj!r} is not a function and cannot become a tool")
        return Tool(obj, **options)
    if not options:
        return obj
    merged: dict[str, Any] = {
        "name": obj.name, "description": obj.description, "timeout": obj.timeout,
        "requires_approval": obj.requires_approval, "sequential": obj.sequential,
        **{key: value for key, value in options.items() if value is not None},
    }
    if obj._raw_schema:
        return Tool.from_schema(merged.pop("name"), merged.pop("description"), obj.parameters,
                                obj.function, **merged)
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


# --------------------------------------------------------------------------- registry


class ToolRegistry:
    """The tools of an agent, by name, in the order they were registered.

    `schemas()` is the `tools` array of a request; it is computed once per change and the
    same list is returned each time (do not mutate it), and `schemas_json()` is its JSON,
    byte-identical from call to call, so the request prefix stays cacheable.
    """

    def __init__(self, tools: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._schemas: list[dict[str, Any]] | None = None
        self._schemas_json: str | None = None
        self._toolsets: list[Toolset] = []
        self._loaded: list[tuple[Tool, ...]] = []  # the toolsets' lists, as last merged
        self._dynamic: set[str] = set()  # names in _tools that come from toolsets
        for item in tools:
            if isinstance(item, ToolRegistry):
                for each in item:
                    if each.name not in item._dynamic:
                        self.register(each)
                self._toolsets.extend(t for t in item._toolsets if t not in self._toolsets)
            elif isinstance(item, Toolset) and not isinstance(item, Tool):
                if item not in self._toolsets:
                    self._toolsets.append(item)
            else:
                self.register(item)

    @classmethod
    def of(
        cls, tools: ToolRegistry | Tool | Callable[..., Any] | Toolset | Iterable[Any] | None
    ) -> ToolRegistry:
        """A registry from what a user hands an Agent: a registry (returned as is), a tool,
        function or toolset, an iterable mixing tools, functions, registries and toolsets,
        or None."""
        if tools is None:
            return cls()
        if isinstance(tools, ToolRegistry):
            return tools
        if callable(tools) or isinstance(tools, Toolset):
            return cls([tools])
        if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
            raise TypeError(f"tools must be tools, functions or registries, got {tools!r}")
        return cls(tools)

    def register(self, tool_or_function: Tool | Callable[..., Any]) -> Tool:
        """Add a tool (a plain function is wrapped with `tool`); returns the `Tool`."""
        item = _to_tool(tool_or_function, {})
        existing = self._tools.get(item.name)
        if existing is not None:
            if existing is item:
                return item
            raise DuplicateToolError(f"a tool named {item.name!r} is already registered")
        self._tools[item.name] = item
        self._schemas = self._schemas_json = None
        return item

    @overload
    def tool(self, function: Callable[..., Any], /) -> Tool: ...
    @overload
    def tool(
        self, /, **options: Unpack[ToolOptions]
    ) -> Callable[[Callable[..., Any]], Tool]: ...
    def tool(
        self, function: Callable[..., Any] | None = None, /, **options: Unpack[ToolOptions]
    ) -> Tool | Callable[[Callable[..., Any]], Tool]:
        """`@registry.tool` / `@registry.tool(...)`: like `@tool`, and registers the tool."""
        _check_options(options)
        if function is not None:
            return self.register(_to_tool(function, options))

        def decorate(function: Callable[..., Any]) -> Tool:
            return self.register(_to_tool(function, options))

        return decorate

    def get(self, name: str) -> Tool:
        """The tool called `name`; `UnknownToolError` (with a message for the model) if none."""
        found = self._tools.get(name)
        if found is not None:
            return found
        raise UnknownToolError(name, self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        if not self._tools:
            return f"Unknown tool {name!r}: no tools are available. Answer without calling tools."
        close = difflib.get_close_matches(name, list(self._tools), n=1)
        guess = f" Did you mean {close[0]!r}?" if close else ""
        return (
            f"Unknown tool {name!r}.{guess} Available tools: {', '.join(self._tools)}. "
            "Call one of these tools by its exact name."
        )

    def names(self) -> list[str]:
        return list(self._tools)

    # ------------------------------------------------------------------ toolsets

    @property
    def toolsets(self) -> list[Toolset]:
        """The toolsets (e.g. MCP servers) whose tools this registry merges in."""
        return list(self._toolsets)

    async def refresh(self) -> None:
        """Merge in the toolsets' current tools (connecting them if needed).

        Registered tools come first, then each toolset's tools in the order given; a toolset
        tool whose name is already taken is left out with a logged warning. Nothing is
        rebuilt while every toolset returns the same `Tool` objects, so `schemas()` stays the
        same list and `schemas_json()` the same bytes. Raises what a toolset's `tools()`
        raises when it cannot reach its source.
        """
        if not self._toolsets:
            return
        lists = [tuple(await toolset.tools()) for toolset in self._toolsets]
        if len(lists) == len(self._loaded) and all(
            len(new) == len(old) and all(a is b for a, b in zip(new, old, strict=True))
            for new, old in zip(lists, self._loaded, strict=True)
        ):
            return
        merged = {name: t for name, t in self._tools.items() if name not in self._dynamic}
        dynamic: set[str] = set()
        for toolset, items in zip(self._toolsets, lists, strict=True):
            for item in items:
                if item.name in merged:
                    warn_skipped(toolset, item.name, "another tool of the agent has this name")
                    continue
                merged[item.name] = item
                dynamic.add(item.name)
        self._tools, self._dynamic, self._loaded = merged, dynamic, lists
        self._schemas = self._schemas_json = None

    async def open_toolsets(self) -> None:
        """Enter every toolset (`async with toolset:`); on a failure the ones already
        entered are closed again and the error is raised."""
        opened: list[Toolset] = []
        try:
            for toolset in self._toolsets:
                await toolset.__aenter__()
                opened.append(toolset)
        except BaseException:
            for toolset in reversed(opened):
                await toolset.__aexit__(None, None, None)
            raise

    async def close_toolsets(self) -> None:
        """Close every toolset (a toolset used again later opens itself again)."""
        for toolset in reversed(self._toolsets):
            await toolset.__aexit__(None, None, None)

    def schemas(self) -> list[dict[str, Any]]:
        """The request's `tools` array (the same list each time until a tool is registered)."""
        if self._schemas is None:
            self._schemas = [item.definition for item in self._tools.values()]
        return self._schemas

    def schemas_json(self) -> str:
        """`schemas()` as compact JSON (non-ASCII kept), byte-identical from call to call."""
        if self._schemas_json is None:
            self._schemas_json = json.dumps(self.schemas(), ensure_ascii=False,
                                            separators=(",", ":"))
        return self._schemas_json

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Tool):
            return self._tools.get(item.name) is item
        return isinstance(item, str) and item in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"



ToolSource: TypeAlias = Tool | Callable[..., Any] | ToolRegistry | Toolset
"""What `ToolRegistry.of` (and the Agent's `tools=`) accepts, alone or in an iterable."""
