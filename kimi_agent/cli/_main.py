"""The `kimi-agent` command.

    kimi-agent demo                  the Chinese customer-service bot, offline on the simulator
    kimi-agent chat --tools MOD      an interactive chat with your tools
    kimi-agent tools MOD[:ATTR]      the tool schemas the model would see
    kimi-agent simulate              the gateway simulator on a loopback port
    kimi-agent mcp serve MOD[:ATTR]  the tools as an MCP server over stdio (extra 'mcp')
    kimi-agent serve [MOD:ATTR]      an agent on the web: API, chat widget, staff console
    kimi-agent sessions copy SRC DST copy conversations between stores (SQLite, PostgreSQL,
                                     Redis)
    kimi-agent workflows list        durable workflows: list / resume / cancel / approve

Sub-commands import what they need when they run, so `kimi-agent --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from kimi_agent.errors import KimiAgentError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kimi-agent",
                                     description="Tool-using agents on Moonshot's Kimi models.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the Chinese customer-service bot demo")
    demo.add_argument("--session", default="demo-customer", help="session id (a customer)")
    demo.add_argument("--db", default=None, help="SQLite file for sessions and orders")
    demo.add_argument("--fresh", action="store_true", help="start the demo data over")
    demo.add_argument("--trace", action="store_true",
                      help="after each turn, print the run as a tree with durations")

    chat = sub.add_parser("chat", help="chat with an agent in the terminal")
    chat.add_argument("--tools", default=None, help="MODULE[:ATTR] holding the tools")
    chat.add_argument("--deps", default=None,
                      help="MODULE:ATTR: the deps passed to the tools (a zero-argument "
                           "function is called), e.g. kimi_agent_tools.demo:chat_deps")
    chat.add_argument("--session", default=None,
                      help="session id: keep the conversation in SQLite and continue it later "
                           "(without it the chat is not saved)")
    chat.add_argument("--db", default=None,
                      help="SQLite file for sessions (default: chat.db in the user data dir)")
    chat.add_argument("--trace", action="store_true",
                      help="after each reply, print the run as a tree with durations")
    chat.add_argument("--model", default="kimi-k2-6")
    chat.add_argument("--fallback", default="kimi-k2-5", help="fallback model, or 'none'")
    chat.add_argument("--instructions", default="你是一个乐于助人的助手。")
    chat.add_argument("--sim-tps", dest="sim_tps", type=float, default=60.0,
                      help="offline simulator: tokens per second of a reply (0: instant)")
    chat.add_argument("--sim-first-token", dest="sim_first_token", type=float, default=0.2,
                      help="offline simulator: seconds before the first token")
    chat.add_argument("--sim-script", dest="sim_script", default=None,
                      help="offline simulator: a JSON or YAML script of replies (messages it "
                           "does not match are echoed)")

    tools = sub.add_parser("tools", help="print the tool schemas the model would see")
    tools.add_argument("target", help="MODULE[:ATTR] holding the tools")

    simulate = sub.add_parser("simulate", help="run the gateway simulator on loopback")
    simulate.add_argument("--port", type=int, default=8787)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--script", default=None, help="a JSON or YAML script of replies")
    simulate.add_argument("--api-key", dest="api_key", default="sim-key")

    from kimi_agent.mcp._cli import add_parser as add_mcp_parser  # argparse only

    add_mcp_parser(sub)
    importlib.import_module("kimi_agent.web._cli").add_parser(sub)
    importlib.import_module("kimi_agent.cli._sessions").add_parser(sub)
    from kimi_agent.durable._cli import add_parser as add_workflows_parser  # argparse only

    add_workflows_parser(sub)
    return parser


def _tools(args: argparse.Namespace) -> int:
    from kimi_agent.cli._loader import load_tools

    registry = load_tools(args.target)
    print(json.dumps(registry.schemas(), ensure_ascii=False, indent=2))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    try:
        from kimi_agent.testing import cli_simulate
    except ImportError:
        print("the simulator needs the 'sim' extra: pip install 'kimi-agent[sim]'",
              file=sys.stderr)
        return 2
    cli_simulate(args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        from kimi_agent_tools.demo.cli import run_demo
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("starlette", "uvicorn", "yaml"):
            raise
        print("the offline demo needs the simulator: pip install 'kimi-agent[sim]' "
              f"({error})", file=sys.stderr)
        return 2
    return run_demo(args)


def _chat(args: argparse.Namespace) -> int:
    from kimi_agent.cli._chat import run_chat

    return run_chat(args)


def _sessions_command(args: argparse.Namespace) -> int:
    status: int = importlib.import_module("kimi_agent.cli._sessions").run(args)
    return status


def _mcp(args: argparse.Namespace) -> int:
    from kimi_agent.mcp import _serve as mcp_serve

    return mcp_serve.run(args)


def _serve(args: argparse.Namespace) -> int:
    status: int = importlib.import_module("kimi_agent.web._cli").run(args)
    return status


def _workflows(args: argparse.Namespace) -> int:
    from kimi_agent.durable import _cli as workflows_cli

    return workflows_cli.run(args)


COMMANDS = {"demo": _demo, "chat": _chat, "tools": _tools, "simulate": _simulate, "mcp": _mcp,
            "serve": _serve, "sessions": _sessions_command, "workflows": _workflows}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (KimiAgentError, ValueError) as error:
        print(f"kimi-agent {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `kimi-agent tools tools | head`): not our error. Point
        # stdout at devnull so that flushing it at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141

