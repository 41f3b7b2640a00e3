"""Reading a tool function's annotations: resolving them (string annotations included),
recognising the `RunContext` parameter, and refusing, with a message naming the parameter,
types that JSON or Moonshot's dialect cannot carry."""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel
from typing_extensions import is_typeddict

from kimi_agent.errors import ToolDefinitionError
from kimi_agent.tooling._run_context import RunContext

_CONTEXT_STRING = re.compile(r"^\s*(?:[\w.]+\.)?RunContext\b")

def _type_hints(
    func: Callable[..., Any],
    signature: inspect.Signature,
    owner: str,
    localns: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The resolved annotation of every annotated parameter.

    `typing.get_type_hints` resolves string annotations (`from __future__ import
    annotations`) as a whole; when one of them cannot be resolved (a class imported only
    under TYPE_CHECKING, say `RunContext[Shop]`), each parameter is resolved on its own, and a
    string naming `RunContext` is recognised as the context without evaluating it.
    """
    if localns is None:
        localns = _defining_locals(func)
    if inspect.isfunction(func) or inspect.ismethod(func):
        try:
            hints = typing.get_type_hints(func, localns=dict(localns or {}), include_extras=True)
            return {k: v for k, v in hints.items() if k in signature.parameters}
        except Exception:  # resolved one by one below
            pass
    target = inspect.unwrap(getattr(func, "__func__", func))
    globalns = dict(getattr(target, "__globals__", {}))
    hints = {}
    for param in signature.parameters.values():
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, globalns, dict(localns or {}))
            except Exception as exc:
                if _CONTEXT_STRING.match(annotation):
                    annotation = RunContext
                else:
                    raise ToolDefinitionError(
                        f"tool {owner!r}: cannot resolve the annotation {annotation!r} of "
                        f"parameter {param.name!r}: {exc}"
                    ) from exc
        hints[param.name] = annotation
    return hints


def _defining_locals(func: Callable[..., Any]) -> Mapping[str, Any] | None:
    """The local names of the function that defined `func`, if it is still running.

    A function defined inside another (`outer.<locals>.f`) may name, in string annotations,
    classes local to `outer`; at decoration time `outer`'s frame is on the stack.
    """
    parts = getattr(inspect.unwrap(getattr(func, "__func__", func)), "__qualname__", "")
    parts = parts.split(".") if isinstance(parts, str) else []
    if "<locals>" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("<locals>")
    if index == 0:
        return None
    outer = parts[index - 1]
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(64):
        if frame is None:
            break
        if frame.f_code.co_name == outer:
            return frame.f_locals
        frame = frame.f_back
    return None


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_context(tp: Any) -> bool:
    tp = _strip(tp)
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, RunContext)


def _check_type(tp: Any, owner: str, param: str, *, top: bool, seen: set[int]) -> None:
    """Refuse, with a message naming the parameter, what JSON or the dialect cannot carry."""
    tp = _strip(tp)
    where = f"tool {owner!r}: parameter {param!r}"
    if tp is Any or tp is object:
        if top:
            raise ToolDefinitionError(
                f"{where} has type {_type_name(tp)}, which tells the model nothing; "
                "use a concrete type (e.g. str, int, dict[str, Any])"
            )
        return
    if _is_context(tp):
        raise ToolDefinitionError(f"{where}: RunContext must be a parameter's whole annotation")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return
    if origin is Union or origin is types.UnionType:
        for arg in args:
            _check_type(arg, owner, param, top=True, seen=seen)
        return
    if isinstance(origin, type) and issubclass(origin, collections.abc.Mapping) and args:
        if not _is_string_key(args[0]):
            raise ToolDefinitionError(
                f"{where} has type {_type_name(tp)}: JSON object keys are strings, "
                "use dict[str, ...]"
            )
        _check_type(args[1], owner, param, top=False, seen=seen)
        return
    if origin is not None:
        for arg in args:
            if arg is not Ellipsis:
                _check_type(arg, owner, param, top=False, seen=seen)
        return
    if not isinstance(tp, type) or id(tp) in seen:
        return
    seen.add(id(tp))
    for name, field_type in _field_types(tp).items():
        _check_type(field_type, owner, f"{param}.{name}", top=True, seen=seen)


def _field_types(tp: type) -> dict[str, Any]:
    if issubclass(tp, BaseModel):
        return {name: info.annotation for name, info in tp.model_fields.items()}
    if dataclasses.is_dataclass(tp) or is_typeddict(tp):
        try:
            return typing.get_type_hints(tp, include_extras=True)
        except Exception:
            return {}  # pydantic reports what it cannot resolve
    return {}


def _is_string_key(tp: Any) -> bool:
    tp = _strip(tp)
    if tp is Any or (isinstance(tp, type) and issubclass(tp, str)):
        return True
    if typing.get_origin(tp) is Literal:
        return all(isinstance(v, str) for v in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return all(isinstance(member.value, str) for member in tp)
    return False


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")
