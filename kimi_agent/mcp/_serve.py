"""`kimi-agent mcp serve MODULE[:ATTR]`: a module's `@tool`s as an MCP server over stdio.

    kimi-agent mcp serve kimi_agent_tools
    kimi-agent mcp serve my_shop.tools:registry --deps my_shop.tools:make_deps

Each tool is listed with its own JSON schema (the one the Kimi models see) as `inputSchema`,
and its calls go through the same argument validation as in an agent. Failures come back as
`isError` results with the message a model would read. Tools that take a `RunContext` are
served only with `--deps MODULE:ATTR` (their deps, or a zero-argument factory of them); tools
that require approval are left out unless `--allow-approval` says the client's own
confirmation is enough. stdout carries the protocol only: notes go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

import anyio

from kimi_agent.errors import ToolCallError
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._tool import Tool, format_result

__all__ = ["run", "select_tools"]


def run(args: argparse.Namespace) -> int:
    """Run `mcp serve` until the client closes stdin; returns the exit status.

    Raises `ValueError` naming a module, attribute or deps target that cannot be loaded.
    """
    try:
        import mcp  # noqa: F401
    except ImportError:
        print("kimi-agent mcp needs the MCP SDK: pip install 'kimi-agent[mcp]'",
              file=sys.stderr)
        return 2
    from kimi_agent.cli._chat import load_deps
    from kimi_agent.cli._loader import load_tools

    registry: ToolRegistry = load_tools(args.target)
    has_deps = args.deps is not None
    deps = load_deps(args.deps) if has_deps else None
    served = select_tools(registry, has_deps=has_deps, allow_approval=args.allow_approval)
    if not served:
        raise ValueError(f"{args.target!r} has no tool that can be served")
    name = args.name or args.target.partition(":")[0]
    anyio.run(_serve_stdio, served, deps, name)
    return 0


def select_tools(registry: ToolRegistry, *, has_deps: bool, allow_approval: bool) -> list[Tool]:
    """The tools to serve; each one left out is named on stderr with the reason."""
    served = []
    for item in registry:
        if item.context_param is not None and not has_deps:
            _note(f"{item.name}: left out, it takes a RunContext (give --deps MODULE:ATTR)")
        elif item.requires_approval and not allow_approval:
            _note(f"{item.name}: left out, it requires approval (--allow-approval serves it)")
        else:
            served.append(item)
    return served


async def _serve_stdio(tools: list[Tool], deps: Any, name: str) -> None:
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    server = _server(Server, tools, deps, name)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def _server(server_type: Any, tools: list[Tool], deps: Any, name: str) -> Any:
    from mcp_types import CallToolResult, ListToolsResult, TextContent
    from mcp_types import Tool as MCPTool

    from kimi_agent import __version__

    by_name = {item.name: item for item in tools}
    listing = ListToolsResult(tools=[
        MCPTool(name=item.name, description=item.description, input_schema=item.parameters)
        for item in tools])

    async def list_tools(ctx: Any, params: Any) -> Any:
        return listing

    async def call_tool(ctx: Any, params: Any) -> Any:
        text, failed = await call(by_name, params.name, params.arguments, deps)
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=failed)

    def input_schema(tool_name: str) -> Any:
        found = by_name.get(tool_name)
        return found.parameters if found is not None else None

    return server_type(name, version=__version__, on_list_tools=list_tools,
                       on_call_tool=call_tool, get_tool_input_schema=input_schema)


async def call(tools: dict[str, Tool], name: str, arguments: Any, deps: Any
               ) -> tuple[str, bool]:
    """Run one call: `(text, failed)`, every failure as the message a model would read."""
    found = tools.get(name)
    if found is None:
        return (f"Unknown tool {name!r}. Available tools: {', '.join(tools)}.", True)
    try:
        kwargs = found.parse_arguments(json.dumps(arguments or {}, ensure_ascii=False))
        ctx = RunContext(deps=deps, run_id=uuid.uuid4().hex, model="mcp").for_call(
            name, uuid.uuid4().hex) if found.context_param is not None else None
        if found.timeout is None:
            value = await found.run(kwargs, ctx)
        else:
            with anyio.fail_after(found.timeout):
                value = await found.run(kwargs, ctx)
        return format_result(value), False
    except ToolCallError as error:
        return error.message, True
    except TimeoutError:
        return (f"Tool '{name}' did not finish within {found.timeout:g} seconds and was "
                "stopped.", True)
    except Exception as error:  # the client's model reads it, like an agent's would
        return f"Tool '{name}' failed: {type(error).__name__}: {error}", True


def _note(text: str) -> None:
    print(f"kimi-agent mcp serve: {text}", file=sys.stderr)
