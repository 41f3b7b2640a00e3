"""`ToolRegistry`: the tools of an agent, by name, and the request's `tools` array.

Building the array is the registry's job: it is computed once per change and kept as the
same list and the same JSON bytes, so the request prefix stays byte-identical (prompt
caching). Looking a tool up is a dict access; an unknown name gets a message the model can
act on (the closest name, the available ones).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias, Unpack, overload

from kimi_agent.errors import DuplicateToolError, UnknownToolError
from kimi_agent.tooling._tool import Tool, ToolOptions, check_options, to_tool
from kimi_agent.tooling._toolset import Toolset, warn_skipped

__all__ = ["ToolRegistry", "ToolSource"]


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
        or None.

        Raises:
            TypeError: `tools` is none of these (a string or a mapping, say).
            ToolDefinitionError: a function cannot be a tool.
            DuplicateToolError: two tools share a name.
        """
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
        """Add a tool (a plain function is wrapped with `tool`); returns the `Tool`.

        Registering the same Tool object again does nothing.

        Raises:
            DuplicateToolError: another tool already has this name.
            ToolDefinitionError: the function cannot be a tool.
        """
        item = to_tool(tool_or_function, {})
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
        """`@registry.tool` / `@registry.tool(...)`: like `@tool`, and registers the tool.

        Raises:
            TypeError: an unknown option.
            ToolDefinitionError: the function cannot be a tool.
            DuplicateToolError: another tool already has this name.
        """
        check_options(options)
        if function is not None:
            return self.register(to_tool(function, options))

        def decorate(function: Callable[..., Any]) -> Tool:
            return self.register(to_tool(function, options))

        return decorate

    def get(self, name: str) -> Tool:
        """The tool called `name`.

        Raises:
            UnknownToolError: no such tool; its message, for the model, names the closest
                one and lists the available tools.
        """
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
        """The tools' names, in registration order."""
        return list(self._tools)

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
