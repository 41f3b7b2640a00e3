"""`MCPToolset`: the tools of an MCP server as tools of an agent.

```python
time = MCPToolset.stdio("uvx", ["mcp-server-time"], prefix="time")
docs = MCPToolset.http("https://mcp.example.com/mcp", headers={"Authorization": "Bearer …"})
agent = Agent(tools=[time, docs, my_tool])
async with agent:              # optional: connects now and closes at the end
    await agent.run("现在几点？")
```

Each MCP tool becomes a `Tool` through the raw-schema path (`Tool.from_schema`): its input
schema is normalised to Moonshot's dialect and checked, and its name mapped to one the model
accepts. A tool that cannot be made valid is left out with a logged warning (and listed in
`skipped`); the agent runs with the others. Calls go through the agent's executor like any
tool (events, approvals, timeouts, the kimi-k2-5 one-by-one rule).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from mcp_types import Tool as MCPTool

from kimi_agent._logging import EventLogger
from kimi_agent.errors import ConfigurationError, ToolDefinitionError
from kimi_agent.mcp._connection import Link, TransportFactory, TransportStreams
from kimi_agent.mcp._errors import MCPToolError
from kimi_agent.mcp._names import map_names, valid_prefix
from kimi_agent.mcp._results import result_text
from kimi_agent.tooling._tool import Tool
from kimi_agent.tooling._toolset import warn_skipped

__all__ = ["MCPToolset"]

Names = bool | Collection[str]
"""True / False for every tool of the server, or a set of tool names (MCP or mapped)."""


class MCPToolset:
    """The tools of one MCP server, for `Agent(tools=[...])` (a `kimi_agent.tooling.Toolset`).

    Build it with `MCPToolset.stdio(...)` or `MCPToolset.http(...)`. It connects on first
    use (or at `async with toolset:` / `async with agent:`), shares one session among all
    runs, reconnects after the server crashed or closed, and re-lists its tools when the
    server says they changed. Options:

    - `prefix`: tool names become `{prefix}_{name}` (keeps servers' names apart).
    - `include` / `exclude`: MCP tool names to keep only / to leave out.
    - `requires_approval`, `sequential`: True for every tool, or a set of tool names.
    - `timeout`: seconds per call (None: the agent's `tool_timeout`).
    - `connect_timeout`: seconds to start the server and complete the handshake.
    - `logger`: a structlog logger for warnings (else kimi-agent's, else `logging`).
    """

    def __init__(
        self,
        transport: TransportFactory,
        *,
        label: str,
        prefix: str | None = None,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        requires_approval: Names = False,
        sequential: Names = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        logger: EventLogger | None = None,
    ) -> None:
        """Prefer `stdio` / `http`; `transport` makes a new SDK transport (an async context
        manager giving the read and write streams) for each connection.

        Raises `ConfigurationError` for a prefix that cannot start a tool name, a
        non-positive timeout, or names given as a single string.
        """
        if prefix is not None and not valid_prefix(prefix):
            raise ConfigurationError(
                f"MCP prefix {prefix!r} cannot start a tool name: use letters, digits, '_' "
                "and '-', not starting with a digit")
        for option, value in (("include", include), ("exclude", exclude),
                              ("requires_approval", requires_approval),
                              ("sequential", sequential)):
            if isinstance(value, str | bytes):
                raise ConfigurationError(f"MCP option {option} takes a collection of tool "
                                         f"names, not the string {value!r}")
        for option, seconds in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if seconds is not None and (isinstance(seconds, bool) or not isinstance(
                    seconds, int | float) or not math.isfinite(seconds) or seconds <= 0):
                raise ConfigurationError(f"MCP option {option} must be a positive number of "
                                         f"seconds, got {seconds!r}")
        self.label = label
        self.prefix = prefix
        self.include = frozenset(include) if include is not None else None
        self.exclude = frozenset(exclude)
        self.requires_approval = requires_approval
        self.sequential = sequential
        self.timeout = timeout
        self.logger = logger
        self.skipped: dict[str, str] = {}
        """MCP tool name → why it was left out, as of the last listing."""
        self._changes = 0
        self._stale = True
        self._tools: list[Tool] | None = None
        self._keys: dict[str, tuple[str, Tool]] = {}
        self._generation = -1
        self._link = Link(label, transport, connect_timeout=connect_timeout,
                          on_change=self._changed)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def stdio(cls, command: str, args: Sequence[str] = (), *,
              env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
              **options: Any) -> MCPToolset:
        """A server started as a subprocess (`command args...`), spoken to over its stdin
        and stdout; `env` is added to a minimal default environment. Its stderr goes to
        ours. `options` are those of `MCPToolset`."""
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=command, args=list(args),
                                       env=dict(env) if env is not None else None, cwd=cwd)
        label = " ".join([Path(command).name, *args][:3])
        return cls(lambda: stdio_client(params, errlog=sys.stderr),
                   label=options.pop("label", label), **options)

    @classmethod
    def http(cls, url: str, headers: Mapping[str, str] | None = None, *,
             transport: Literal["streamable-http", "sse"] = "streamable-http",
             **options: Any) -> MCPToolset:
        """A server at `url`, over streamable HTTP (the default) or the older SSE transport
        (`transport="sse"`); `headers` go with every request (e.g. authorisation).
        `options` are those of `MCPToolset`. Raises `ConfigurationError` for another
        transport name."""
        if transport not in ("streamable-http", "sse"):
            raise ConfigurationError(f"MCP transport must be 'streamable-http' or 'sse', "
                                     f"got {transport!r}")
        fixed = dict(headers or {})
        factory = _sse(url, fixed) if transport == "sse" else _streamable(url, fixed)
        return cls(factory, label=options.pop("label", url), **options)

    # ------------------------------------------------------------------ Toolset protocol

    @property
    def changes(self) -> int:
        """Grows each time the server says its tools changed or a new listing differs."""
        return self._changes

    @property
    def connected(self) -> bool:
        """Whether a session with the server is open right now."""
        return self._link.connected

    async def tools(self) -> list[Tool]:
        """The server's tools as `Tool`s, listed once and again after a change or a
        reconnection (the same objects while nothing changed).

        Raises `MCPConnectionError` when the server cannot be reached and
        `MCPProtocolError` when it refuses to list its tools.
        """
        if self._tools is not None and not self._stale \
                and self._generation == self._link.generation:
            return self._tools
        seen = self._changes
        listing, generation = await self._link.list_tools()
        tools = self._convert(listing)
        if self._changes == seen:  # no change announced while listing
            self._stale = False
        previous = self._tools
        if previous is None or len(tools) != len(previous) or any(
                a is not b for a, b in zip(tools, previous, strict=False)):
            if previous is not None:
                self._changes += 1
            self._tools = previous = tools
        self._generation = generation
        return previous

    async def __aenter__(self) -> MCPToolset:
        await self.tools()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session (stops a stdio server); the next use opens a new one."""
        await self._link.aclose()

    def __repr__(self) -> str:
        return f"MCPToolset({self.label!r})"

    # ------------------------------------------------------------------ internals

    def _changed(self) -> None:
        self._stale = True
        self._changes += 1

    def _convert(self, listing: list[MCPTool]) -> list[Tool]:
        wanted = [t for t in listing if (self.include is None or t.name in self.include)
                  and t.name not in self.exclude]
        mapped, problems = map_names([t.name for t in wanted], self.prefix)
        skipped = dict(problems)
        keys: dict[str, tuple[str, Tool]] = {}
        tools: list[Tool] = []
        for item in wanted:
            name = mapped.get(item.name)
            if name is None:
                continue
            description = item.description or item.title or ""
            flags = (self._flag(self.requires_approval, item.name, name),
                     self._flag(self.sequential, item.name, name))
            key = json.dumps([name, description, item.input_schema, flags], sort_keys=True,
                             ensure_ascii=False, default=str)
            previous = self._keys.get(item.name)
            if previous is not None and previous[0] == key:
                keys[item.name] = previous
                tools.append(previous[1])
                continue
            try:
                made = Tool.from_schema(name, description, item.input_schema,
                                        self._caller(item.name, name), timeout=self.timeout,
                                        requires_approval=flags[0], sequential=flags[1])
            except ToolDefinitionError as error:
                skipped[item.name] = str(error)
                continue
            keys[item.name] = (key, made)
            tools.append(made)
        for name, reason in skipped.items():
            if self.skipped.get(name) != reason:
                warn_skipped(self, name, reason, self.logger)
        self.skipped, self._keys = skipped, keys
        return tools

    @staticmethod
    def _flag(option: Names, mcp_name: str, name: str) -> bool:
        if isinstance(option, bool):
            return option
        return mcp_name in option or name in option

    def _caller(self, mcp_name: str, name: str) -> Callable[..., Any]:
        link = self._link

        async def call_mcp_tool(**arguments: Any) -> str:
            result = await link.call(mcp_name, arguments, shown=name)
            text = result_text(result.content, result.structured_content)
            if result.is_error:
                raise MCPToolError(name, f"Tool '{name}' reported an error: "
                                         f"{text or 'no details given'}", server=self.label)
            return text

        call_mcp_tool.__qualname__ = call_mcp_tool.__name__ = name
        return call_mcp_tool


def _streamable(url: str, headers: dict[str, str]) -> TransportFactory:
    @asynccontextmanager
    async def connect() -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        # The SDK's own defaults: a server may hold a response stream open for long.
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http, \
                streamable_http_client(url, http_client=http) as streams:
            yield streams

    return connect


def _sse(url: str, headers: dict[str, str]) -> Callable[
        [], AbstractAsyncContextManager[TransportStreams]]:
    def connect() -> AbstractAsyncContextManager[TransportStreams]:
        from mcp.client.sse import sse_client

        return sse_client(url, headers=headers)

    return connect
