"""The safe calculator: exact results, Chinese-style input, and nothing off the whitelist."""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kimi_agent_tools import InvalidInputError, calculate, calculator
from kimi_agent_tools.calculator import MAX_EXPRESSION_LENGTH, evaluate, normalize

from kimi_agent import Tool
from kimi_agent.tooling._dialect import check_moonshot


@pytest.fixture(autouse=True, scope="module")
def no_eval() -> Iterator[None]:
    """The calculator module must never reach eval/exec/compile (shadowed for its code)."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("eval/exec/compile must not be used")

    with pytest.MonkeyPatch.context() as patch:
        for name in ("eval", "exec", "compile"):
            patch.setattr(calculator, name, forbidden, raising=False)
        yield


def result(expression: str) -> str:
    value = calculate(expression)
    assert isinstance(value, dict)
    return str(value["result"])


def test_is_a_tool_with_one_string_parameter() -> None:
    assert isinstance(calculate, Tool)
    assert calculate.name == "calculate"
    assert calculate.parameters["properties"]["expression"]["type"] == "string"
    assert calculate.parameters["required"] == ["expression"]
    assert not calculate.requires_approval
    assert check_moonshot(calculate.parameters) == []
    assert "计算" in calculate.description


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0.1 + 0.2", "0.3"),  # decimals, not binary floats: money adds up
        ("(199 + 99) * 0.9", "268.2"),
        ("10 / 4", "2.5"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),  # Python's floor division
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2 ** -2", "0.25"),
        ("-3 ** 2", "-9"),
        ("+5 - -5", "10"),
        ("sqrt(16)", "4"),
        ("abs(-3.50)", "3.5"),
        ("round(2.345, 2)", "2.35"),
        ("round(2.5)", "3"),  # 四舍五入, not banker's rounding
        ("round(1234, -2)", "1200"),
        ("min(3, 1, 2) + max(4, 6)", "7"),
        ("floor(-2.5) + ceil(2.1)", "0"),
        ("1 / 3", "0.3333333333333333333333333333"),
        ("1_000 * 3", "3000"),
    ],
)
def test_arithmetic(expression: str, expected: str) -> None:
    assert result(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("（１２＋３）×２", "30"),  # full-width digits, brackets and operators
        ("１００÷８", "12.5"),
        ("299×85%", "254.15"),  # a discount: 85% of the price
        ("200 * 85% + 10", "180"),
        ("50%", "0.5"),
        ("10 % 3", "1"),  # still the remainder when an operand follows
        ("2^10", "1024"),
        ("10 − 3", "7"),  # U+2212 MINUS SIGN
        ("max(1，5，3)", "5"),  # full-width comma
    ],
)
def test_chinese_style_input(expression: str, expected: str) -> None:
    assert result(expression) == expected


def test_returns_the_normalised_expression() -> None:
    assert calculate("（1＋2）×3") == {"expression": "(1+2)*3", "result": "9"}


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "为空"),
        ("1 +", "格式不正确"),
        ("(1 + 2", "格式不正确"),
        ("1 / 0", "除数不能为零"),
        ("5 // 0", "除数不能为零"),
        ("0 ** -1", "除数不能为零"),
        ("sqrt(-1)", "负数不能开平方"),
        ("(-8) ** (1/3)", "无法计算"),
        ("9 ** 9 ** 9", "指数太大"),
        ("x + 1", "名称 'x'"),
        ("__import__('os')", "不支持的字符"),
        ("open('/etc/passwd')", "不支持的字符"),
        ("exit()", "函数 'exit'"),
        ("(1).real", "属性访问"),
        ("1 < 2", "不支持的字符"),
        ("1 and 2", "逻辑运算"),
        ("1 if 1 else 2", "语法"),
        ("lambda: 1", "不支持的字符"),
        ("[1, 2]", "不支持的字符"),
        ("True + 1", "常量 True"),
        ("1j * 2", "常量"),
        ("round(1, 2, 3)", "参数个数"),
        ("max(*(1, 2))", "星号"),
        ("round(1.5, 0.5)", "整数"),
        ("1,299 * 2", "千位分隔符"),
        ("1" + "+1" * MAX_EXPRESSION_LENGTH, "太长"),
    ],
)
def test_bad_input_is_a_clear_bilingual_error(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        calculate(expression)
    message = str(error.value)
    assert fragment in message
    assert any("a" <= c <= "z" for c in message)  # the English half is there too


def test_overflow_is_an_error_not_a_crash() -> None:
    with pytest.raises(InvalidInputError, match="太大"):
        evaluate("(10 ** 1000) ** 1000")


# --------------------------------------------------------------------------- properties

_SAFE_INT = st.integers(min_value=-999, max_value=999)


@st.composite
def int_expressions(draw: st.DrawFn, depth: int = 3) -> str:
    """Integer expressions with + - * // % whose value Python computes exactly."""
    if depth == 0 or draw(st.booleans()):
        value = draw(_SAFE_INT)
        return f"({value})" if value < 0 else str(value)
    op = draw(st.sampled_from(["+", "-", "*", "//", "%"]))
    left = draw(int_expressions(depth - 1))
    right = draw(int_expressions(depth - 1))
    return f"({left} {op} {right})"


@settings(max_examples=300, deadline=None)
@given(int_expressions())
def test_integer_arithmetic_matches_python(expression: str) -> None:
    try:
        exact = _python_value(expression)
    except ZeroDivisionError:
        with pytest.raises(InvalidInputError, match="除数不能为零"):
            evaluate(expression)
        return
    assert evaluate(expression) == Decimal(exact)


def _python_value(expression: str) -> int:
    """The value Python gives, computed by walking the ast with Python's int operators."""
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int)
            return node.value
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand)
        assert isinstance(node, ast.BinOp)
        return int(ops[type(node.op)](walk(node.left), walk(node.right)))

    return walk(ast.parse(expression, mode="eval"))


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_gives_a_number_or_a_clear_error(text: str) -> None:
    try:
        value = calculate(text)
    except InvalidInputError as error:
        assert str(error)
        return
    assert Decimal(value["result"]).is_finite()


_FORBIDDEN = st.sampled_from(
    ["__import__", "os", "open", "eval", "exec", "globals", "sys", "print", "x", "__builtins__",
     "getattr", "type", "input", "breakpoint", "compile", "vars", "dir", "help", "license"]
)
_ATOMS = st.one_of(st.integers(0, 99).map(str), st.sampled_from(["pi", "e", "sqrt(4)"]))


@settings(max_examples=300, deadline=None)
@given(
    _FORBIDDEN,
    st.sampled_from(["{n}", "{n}()", "{n}(1)", "{a}.{n}", "{n}.{n}", "({a}).{n}", "{n}({a}, {a})"]),
    _ATOMS,
    st.sampled_from(["{x}", "{a} + {x}", "{x} * {a}", "max({a}, {x})", "-({x})", "{a} ** {x}"]),
)
def test_never_evaluates_anything_off_the_whitelist(
    name: str, form: str, atom: str, context: str
) -> None:
    forbidden = form.format(n=name, a=atom)
    expression = context.format(x=forbidden, a=atom)
    with pytest.raises(InvalidInputError, match=r"不支持|格式不正确"):
        evaluate(expression)


@given(st.text(max_size=40))
def test_normalize_never_crashes(text: str) -> None:
    assert isinstance(normalize(text), str)
