"""MCP tool names → names Moonshot accepts (`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`), without clashes.

A name that is valid as it is (after the prefix) is kept; the others are rewritten (invalid
characters become `_`, a leading digit gets a `_` before it, and an over-long or clashing
name is cut and given a short hash of the original), in a second pass so a rewritten name
never takes a name the server really uses. The mapping depends only on the list of names,
so it is the same on every refresh.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_VALID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_-]")
MAX_LENGTH = 64


def valid_prefix(prefix: str) -> bool:
    """Whether `prefix` can start a tool name (`{prefix}_{name}`)."""
    return bool(_VALID.fullmatch(prefix)) and len(prefix) < MAX_LENGTH - 1


def map_names(names: Iterable[str], prefix: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """`(mapped, problems)`: MCP name → tool name for every name that could be mapped, and
    MCP name → the reason for each that could not (a duplicate, or a clash left over)."""
    mapped: dict[str, str] = {}
    problems: dict[str, str] = {}
    taken: set[str] = set()
    later: list[str] = []
    for name in names:
        if name in mapped or name in problems or name in later:
            problems[name] = "the server lists two tools with this name"
            mapped.pop(name, None)
            continue
        candidate = f"{prefix}_{name}" if prefix else name
        if _VALID.fullmatch(candidate):
            mapped[name] = candidate
            taken.add(candidate)
        else:
            later.append(name)
    for name in later:
        if name in problems:
            continue
        candidate = _rewrite(name, prefix)
        if candidate in taken:
            candidate = _with_hash(candidate, name)
        if candidate in taken:
            problems[name] = (f"its name cannot be made a valid tool name without taking "
                              f"{candidate!r}, which another tool uses")
            continue
        mapped[name] = candidate
        taken.add(candidate)
    return mapped, problems


def _rewrite(name: str, prefix: str | None) -> str:
    body = _INVALID_CHAR.sub("_", name) or "_"
    candidate = f"{prefix}_{body}" if prefix else body
    if not re.match(r"[A-Za-z_]", candidate):
        candidate = "_" + candidate
    if len(candidate) > MAX_LENGTH:
        candidate = _with_hash(candidate, name)
    return candidate


def _with_hash(candidate: str, original: str) -> str:
    digest = hashlib.sha256(original.encode("utf-8")).hexdigest()[:8]
    return f"{candidate[:MAX_LENGTH - 9]}_{digest}"
