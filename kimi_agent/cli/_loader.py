"""`MODULE[:ATTR]` → the tools it names: shared by `kimi-agent tools` and `kimi-agent chat`."""

from __future__ import annotations

import importlib
from typing import Any

from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._tool import Tool


def load_tools(target: str) -> Any:
    """The tools named by `MODULE[:ATTR]` as a `ToolRegistry`.

    Without `ATTR`, every `Tool` defined at the module's top level is taken (a `ToolRegistry`
    there is taken whole). Raises `ValueError` naming what was not found.
    """
    module_name, _, attr = target.partition(":")
    if module_name.endswith(".py"):
        raise ValueError(f"give a module name, not a file: {module_name[:-3].replace('/', '.')}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r}: {error}") from None
    if attr:
        try:
            value = getattr(module, attr)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
        return ToolRegistry.of(value)
    found = [v for v in vars(module).values() if isinstance(v, Tool | ToolRegistry)]
    if not found:
        raise ValueError(f"module {module_name!r} defines no tools (decorate them with @tool)")
    return ToolRegistry.of(found)
