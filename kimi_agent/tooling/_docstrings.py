"""A small docstring parser: the text a tool shows the model, and one line per parameter.

Understands the three common styles, and Chinese section names and full-width colons:

- Google: ``Args:`` / ``参数:`` sections with ``name (type): description`` entries;
- NumPy: ``Parameters`` underlined with dashes, ``name : type`` then indented description;
- Sphinx: ``:param name: description`` / ``:param type name: description`` fields.

Text is never rewritten: continuation lines are joined with a newline, so Chinese (which has
no spaces between words) and English alike come out exactly as written.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["Docstring", "parse_docstring"]


@dataclass(frozen=True, slots=True)
class Docstring:
    """What a docstring says.

    `summary` is the first paragraph; `description` is the whole text without the sections
    that describe parameters, return values and exceptions (other sections, such as notes or
    examples, stay); `params` maps parameter names to their descriptions.
    """

    summary: str = ""
    description: str = ""
    params: dict[str, str] = field(default_factory=dict)
    returns: str = ""


_PARAM_SECTIONS = frozenset({
    "args", "arguments", "parameters", "params", "keyword args", "keyword arguments",
    "kwargs", "other parameters", "other params", "参数", "参数列表", "入参",
})
_RETURN_SECTIONS = frozenset({"returns", "return", "yields", "yield", "返回", "返回值"})
_RAISE_SECTIONS = frozenset({
    "raises", "raise", "exceptions", "except", "warns", "异常", "抛出", "抛出异常",
})
_KEPT_SECTIONS = frozenset({
    "examples", "example", "note", "notes", "see also", "references", "attributes",
    "todo", "warning", "warnings", "methods", "示例", "例子", "注意", "说明", "备注",
})
_DROPPED_SECTIONS = _PARAM_SECTIONS | _RETURN_SECTIONS | _RAISE_SECTIONS
_ALL_SECTIONS = _DROPPED_SECTIONS | _KEPT_SECTIONS

_GOOGLE_HEADER = re.compile(r"^(?P<name>[^\W\d][\w ]*?)\s*[:：]\s*$")
_GOOGLE_ENTRY = re.compile(
    r"^(?P<name>\*{0,2}[^\W\d]\w*)\s*(?:[(（][^)）]*[)）])?\s*[:：]\s*(?P<desc>.*)$"
)
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_NUMPY_ENTRY = re.compile(
    r"^(?P<names>\*{0,2}[^\W\d]\w*(?:\s*,\s*\*{0,2}[^\W\d]\w*)*)\s*(?:[:：].*)?$"
)
_SPHINX_FIELD = re.compile(r"^(?P<indent>\s*):(?P<kind>[a-z]+)(?P<args>[^:]*):(?P<desc>.*)$")
_SPHINX_PARAM = frozenset({"param", "parameter", "arg", "argument", "key", "keyword"})
_SPHINX_RETURN = frozenset({"returns", "return", "yields", "yield"})
_SPHINX_KINDS = _SPHINX_PARAM | _SPHINX_RETURN | frozenset({
    "type", "rtype", "ytype", "raises", "raise", "except", "exception", "var", "ivar",
    "cvar", "vartype", "meta",
})


def parse_docstring(doc: str | None) -> Docstring:
    """Parse `doc` (e.g. ``func.__doc__``); `None` or blank gives an empty `Docstring`."""
    if not doc or not doc.strip():
        return Docstring()
    lines = [line.rstrip() for line in inspect.cleandoc(doc).splitlines()]
    params: dict[str, str] = {}
    returns: list[str] = []
    lines = _sphinx(lines, params, returns)
    if any(_numpy_header(lines, i) for i in range(len(lines))):
        lines = _numpy(lines, params, returns)
    else:
        lines = _google(lines, params, returns)
    description = _tidy(lines)
    summary = description.split("\n\n", 1)[0]
    return Docstring(summary=summary, description=description, params=params,
                     returns="\n".join(returns).strip())


# --------------------------------------------------------------------------- helpers


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _tidy(lines: list[str]) -> str:
    """Join the kept lines: no leading or trailing blank lines, no runs of blank lines."""
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def _entries(section: list[str], entry: re.Pattern[str], group: str) -> list[tuple[str, str]]:
    """Split a parameter section into (names, description) pairs.

    An entry starts on a line at the section's base indentation that matches `entry`; more
    indented lines continue it. The text after the entry's colon (Google) is the first line.
    """
    body = [line for line in section if line.strip()]
    if not body:
        return []
    base = min(_indent(line) for line in body)
    pairs: list[tuple[str, list[str]]] = []
    for line in section:
        match = entry.match(line[base:]) if _indent(line) == base else None
        if match:
            first = match.groupdict().get("desc") or ""
            pairs.append((match.group(group), [first.strip()] if first.strip() else []))
        elif pairs and line.strip():
            pairs[-1][1].append(line.strip())
    return [(names, "\n".join(desc)) for names, desc in pairs]


def _add_params(params: dict[str, str], names: str, desc: str) -> None:
    for name in names.split(","):
        name = name.strip().lstrip("*")
        if name and desc and name not in params:
            params[name] = desc


# --------------------------------------------------------------------------- Google


def _google_header(line: str) -> str | None:
    match = _GOOGLE_HEADER.match(line.strip())
    if match and match.group("name").lower() in _ALL_SECTIONS:
        return match.group("name").lower()
    return None


def _google(lines: list[str], params: dict[str, str], returns: list[str]) -> list[str]:
    kept: list[str] = []
    i = 0
    while i < len(lines):
        name = _google_header(lines[i])
        if name is None or name not in _DROPPED_SECTIONS:
            kept.append(lines[i])
            i += 1
            continue
        indent = _indent(lines[i])
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            end += 1
        section = lines[i + 1:end]
        if name in _PARAM_SECTIONS:
            for names, desc in _entries(section, _GOOGLE_ENTRY, "name"):
                _add_params(params, names, desc)
        elif name in _RETURN_SECTIONS:
            returns.extend(line.strip() for line in section)
        i = end
    return kept


# --------------------------------------------------------------------------- NumPy


def _numpy_header(lines: list[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and lines[i].strip().lower() in _ALL_SECTIONS
        and bool(_NUMPY_UNDERLINE.match(lines[i + 1]))
    )


def _numpy(lines: list[str], params: dict[str, str], returns: list[str]) -> list[str]:
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if not _numpy_header(lines, i):
            kept.append(lines[i])
            i += 1
            continue
        name = lines[i].strip().lower()
        end = i + 2
        while end < len(lines) and not _numpy_header(lines, end):
            end += 1
        section = lines[i + 2:end]
        if name in _PARAM_SECTIONS:
            for names, desc in _entries(section, _NUMPY_ENTRY, "names"):
                _add_params(params, names, desc)
        elif name in _RETURN_SECTIONS:
            returns.extend(line.strip() for line in section)
        elif name in _KEPT_SECTIONS:
            kept.extend(lines[i:end])
        i = end
    return kept


# --------------------------------------------------------------------------- Sphinx


def _sphinx(lines: list[str], params: dict[str, str], returns: list[str]) -> list[str]:
    kept: list[str] = []
    i = 0
    while i < len(lines):
        match = _SPHINX_FIELD.match(lines[i])
        if not match or match.group("kind") not in _SPHINX_KINDS:
            kept.append(lines[i])
            i += 1
            continue
        indent = len(match.group("indent"))
        desc = [match.group("desc").strip()] if match.group("desc").strip() else []
        i += 1
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) > indent:
            desc.append(lines[i].strip())
            i += 1
        kind, args = match.group("kind"), match.group("args").split()
        if kind in _SPHINX_PARAM and args:
            _add_params(params, args[-1], "\n".join(desc))
        elif kind in _SPHINX_RETURN:
            returns.extend(desc)
    return kept
