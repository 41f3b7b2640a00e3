"""A safe calculator: arithmetic on decimals, parsed with `ast`, never `eval`.

安全计算器。A calculator the model can use for prices, discounts and totals.

Why not `eval`: the expression comes from the model, which copies it from customers. The
expression is parsed with `ast` and only a whitelist of nodes is evaluated — numbers,
``+ - * / // % **``, unary ``+``/``-``, parentheses and a few functions (`sqrt`, `round`,
`abs`, `min`, `max`, `floor`, `ceil`) and constants (`pi`, `e`). Anything else (names,
attributes, strings, comparisons, subscripts, lambdas, keyword arguments…) is refused before
anything runs. The expression length and exponents are capped so that no input can make the
calculator slow.

Arithmetic is done in `decimal.Decimal` with 28 significant digits, so money adds up
(``0.1 + 0.2`` is ``0.3``). `//` and `%` follow Python's rules (floor division); `round`
rounds half up (四舍五入, as shops do), not to even.

Input written the Chinese way is accepted: full-width digits and operators (``１２＋３``,
``（）``), ``×`` and ``÷``, the minus sign ``−``, ``^`` for powers, and a percent sign directly
after a number that is not followed by an operand (``299×85%`` means ``299*0.85``; ``10 % 3``
is still the remainder).
"""

from __future__ import annotations

import ast
import decimal
import re
import unicodedata
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from kimi_agent import tool
from kimi_agent_tools.errors import InvalidInputError

__all__ = ["MAX_EXPONENT", "MAX_EXPRESSION_LENGTH", "calculate", "evaluate", "normalize"]

MAX_EXPRESSION_LENGTH = 200
"""Longest expression accepted, in characters (after normalisation)."""

MAX_EXPONENT = 1000
"""Largest absolute exponent accepted by ``**`` (``2**1000`` is fine, ``9**9**9`` is not)."""

_CONTEXT = decimal.Context(
    prec=28,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

_TRANSLATE = str.maketrans(
    {"×": "*", "✕": "*", "÷": "/", "−": "-", "–": "-", "^": "**", "（": "(", "）": ")"}
)
# "85%" at the end, or before an operator / closing bracket, means a percentage.
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)\s*%(?!\s*[\w.(])")

_ALLOWED_CHARACTERS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.,+-*/%() "
)

_BINARY: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


def normalize(expression: str) -> str:
    """Turn Chinese-style input into a plain ASCII expression (see the module docstring)."""
    text = unicodedata.normalize("NFKC", expression).translate(_TRANSLATE)
    text = text.replace("，", ",")
    text = _PERCENT.sub(r"(\1/100)", text)
    return " ".join(text.split())


def _floor(x: Decimal) -> Decimal:
    return x.to_integral_value(rounding=decimal.ROUND_FLOOR)


def _ceil(x: Decimal) -> Decimal:
    return x.to_integral_value(rounding=decimal.ROUND_CEILING)


def _sqrt(x: Decimal) -> Decimal:
    if x < 0:
        raise InvalidInputError(
            f"负数不能开平方：sqrt({_format(x)})。Cannot take the square root of a negative number."
        )
    return x.sqrt()


def _round(x: Decimal, digits: Decimal = Decimal(0)) -> Decimal:
    if digits != digits.to_integral_value() or not -20 <= digits <= 20:
        raise InvalidInputError(
            "round 的小数位数必须是 -20 到 20 之间的整数。"
            "round() takes a whole number of digits between -20 and 20."
        )
    return x.quantize(Decimal(1).scaleb(-int(digits)), rounding=decimal.ROUND_HALF_UP)


def _min(*args: Decimal) -> Decimal:
    return min(args)


def _max(*args: Decimal) -> Decimal:
    return max(args)


# name -> (function, least arguments, most arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., Decimal], int, int]] = {
    "sqrt": (_sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "floor": (_floor, 1, 1),
    "ceil": (_ceil, 1, 1),
    "min": (_min, 1, 20),
    "max": (_max, 1, 20),
}
_CONSTANTS: dict[str, Decimal] = {
    "pi": Decimal("3.141592653589793238462643383"),
    "e": Decimal("2.718281828459045235360287471"),
}


def _refuse(zh: str, en: str) -> InvalidInputError:
    names = [*_FUNCTIONS, *_CONSTANTS]
    return InvalidInputError(
        f"不支持的表达式：{zh}。只能使用数字、+ - * / // % **、括号和 {'、'.join(names)}。"
        f"Unsupported expression: {en}. Only numbers, + - * / // % **, parentheses and "
        f"{', '.join(names)} are allowed."
    )


class _Evaluator:
    """Evaluates a parsed expression, node by node, refusing anything off the whitelist."""

    def __init__(self, source: str) -> None:
        self.source = source

    def eval(self, node: ast.AST) -> Decimal:
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            return self._number(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            value = self.eval(node.operand)
            return +value if isinstance(node.op, ast.UAdd) else -value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._binary(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise _refuse(f"名称 '{node.id}'", f"name '{node.id}'")
        if isinstance(node, ast.Call):
            return self._call(node)
        raise _refuse(*_describe(node))

    def _number(self, node: ast.Constant) -> Decimal:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refuse(f"常量 {value!r}", f"constant {value!r}")
        if isinstance(value, int):
            return Decimal(value)
        text = ast.get_source_segment(self.source, node) or repr(value)
        try:
            return Decimal(text)
        except decimal.InvalidOperation:
            return Decimal(repr(value))

    def _call(self, node: ast.Call) -> Decimal:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else "?"
            raise _refuse(f"函数 '{name}'", f"function '{name}'")
        name = node.func.id
        function, least, most = _FUNCTIONS[name]
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _refuse(f"{name}() 的关键字或星号参数", f"keyword or * arguments of {name}()")
        if not least <= len(node.args) <= most:
            raise InvalidInputError(
                f"{name}() 的参数个数不对：需要 {least}–{most} 个，给了 {len(node.args)} 个。"
                f"{name}() takes {least} to {most} arguments, got {len(node.args)}."
            )
        return function(*(self.eval(arg) for arg in node.args))

    def _binary(self, op: ast.operator, a: Decimal, b: Decimal) -> Decimal:
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Pow):
            if abs(b) > MAX_EXPONENT:
                raise InvalidInputError(
                    f"指数太大：{_format(b)}（最大 {MAX_EXPONENT}）。"
                    f"Exponent {_format(b)} is too large (at most {MAX_EXPONENT})."
                )
            if a == 0 and b < 0:
                raise _division_by_zero()
            return a**b
        if b == 0:
            raise _division_by_zero()
        if isinstance(op, ast.Div):
            return a / b
        quotient = _floor(a / b)  # Python's floor division, not Decimal's truncation
        if isinstance(op, ast.FloorDiv):
            return quotient
        return a - b * quotient


def _division_by_zero() -> InvalidInputError:
    return InvalidInputError("除数不能为零。Division by zero.")


def _describe(node: ast.AST) -> tuple[str, str]:
    """How to name a refused node in the error message (Chinese, English)."""
    kinds: list[tuple[type[ast.AST], str, str]] = [
        (ast.Attribute, "属性访问", "attribute access"),
        (ast.Subscript, "下标", "subscript"),
        (ast.Compare, "比较", "comparison"),
        (ast.BoolOp, "逻辑运算", "boolean operator"),
        (ast.BinOp, "位运算", "bitwise operator"),
        (ast.UnaryOp, "运算符", "operator"),
        (ast.Lambda, "lambda", "lambda"),
        (ast.Tuple, "逗号分隔的多个值（千位分隔符请去掉逗号）",
         "several comma-separated values (write numbers without thousands separators)"),
    ]
    for kind, zh, en in kinds:
        if isinstance(node, kind):
            return zh, en
    name = type(node).__name__
    return f"语法 {name}", f"syntax {name}"


def _format(value: Decimal) -> str:
    """A decimal as people write it: no exponent unless the number is huge or tiny."""
    if value.is_zero():
        return "0"
    value = value.normalize()
    exponent = value.adjusted()
    if -12 <= exponent < 28:
        return format(value, "f")
    return str(value)


def evaluate(expression: str) -> Decimal:
    """Evaluate `expression` (after `normalize`) and return the exact decimal result.

    Raises `InvalidInputError` with a Chinese + English message for anything that is not a
    plain arithmetic expression, for division by zero, and for results out of range.
    """
    text = normalize(expression)
    if not text:
        raise InvalidInputError("表达式为空。The expression is empty.")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidInputError(
            f"表达式太长（{len(text)} 个字符，最多 {MAX_EXPRESSION_LENGTH} 个）。"
            f"The expression is too long ({len(text)} characters, at most "
            f"{MAX_EXPRESSION_LENGTH})."
        )
    bad = sorted({c for c in text if c not in _ALLOWED_CHARACTERS})
    if bad:
        shown = " ".join(repr(c) for c in bad[:5])
        raise InvalidInputError(
            f"表达式中有不支持的字符：{shown}。The expression contains unsupported characters: "
            f"{shown}."
        )
    try:
        with warnings.catch_warnings():  # "1if" and the like warn before failing
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise InvalidInputError(
            f"表达式格式不正确：{text!r}。Malformed expression: {text!r}."
        ) from error
    try:
        with decimal.localcontext(_CONTEXT):  # a per-thread copy: safe in worker threads
            result = +_Evaluator(text).eval(tree)  # rounded to the context's precision
    except decimal.Overflow as error:
        raise InvalidInputError("结果太大，无法计算。The result is too large.") from error
    except decimal.DecimalException as error:
        raise InvalidInputError(
            f"无法计算：{text!r}。The expression has no numeric result: {text!r}."
        ) from error
    except RecursionError as error:
        raise InvalidInputError("表达式嵌套太深。The expression is nested too deeply.") from error
    if not result.is_finite():
        raise InvalidInputError("结果不是有限数。The result is not a finite number.")
    return result


@tool
def calculate(expression: str) -> dict[str, Any]:
    """计算数学表达式，适合价格、折扣、合计。Evaluate an arithmetic expression exactly.

    Supports + - * / // % ** and parentheses, sqrt, round (四舍五入 / half up), abs, min,
    max, floor, ceil, pi, e. Full-width characters, × ÷ and "85%" are understood.

    Args:
        expression: 算式，例如 "299 × 0.85 + 12" / the expression, e.g. "(199+99)*0.9".
    """
    result = evaluate(expression)
    return {"expression": normalize(expression), "result": _format(result)}
