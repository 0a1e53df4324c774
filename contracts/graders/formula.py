"""A multi grader's `calculate_output`: arithmetic over its graders' rewards, never `eval`.

The formula is parsed with Python's `ast` and only these nodes are accepted: numbers, the
graders' names, `+ - * /`, powers (`^` as OpenAI's guide writes it, or `**`), unary `+ -`,
parentheses, and calls of `min max abs floor ceil exp sqrt log` (OpenAI's list) and `round`
with positional arguments. Evaluation is over floats: a result that is not a finite number
(a division by zero, `log(0)`, an overflow) is a `FormulaError`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Final

MAX_CHARS: Final = 2000
MAX_NODES: Final = 500
MAX_EXPONENT: Final = 1000.0

FUNCTIONS: Final[dict[str, Callable[..., float]]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
    "round": round,
}
_ARITY: Final[dict[str, tuple[int, int]]] = {
    "min": (1, 64),
    "max": (1, 64),
    "log": (1, 2),
    "round": (1, 2),
}


def _power(base: float, exponent: float) -> float:
    if abs(exponent) > MAX_EXPONENT:
        raise FormulaError(f"An exponent of {exponent:g} is out of range.")
    return float(base**exponent)


_BINARY: Final[dict[type[ast.operator], Callable[[float, float], float]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: _power,
}
_UNARY: Final[dict[type[ast.unaryop], Callable[[float], float]]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


class FormulaError(ValueError):
    """A formula that does not parse, names an unknown grader, or has no finite value."""


def parse(text: str, names: set[str]) -> ast.expr:
    """The checked tree of `text`; `names` are the variables it may use."""
    if len(text) > MAX_CHARS:
        raise FormulaError(f"`calculate_output` must be at most {MAX_CHARS} characters.")
    try:
        # `^` is a power, as OpenAI's formulas write it (and binds as `**` does); a formula
        # holds no strings, so the swap cannot change anything else.
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"`calculate_output` does not parse: {e.msg}.") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise FormulaError("`calculate_output` is too long.")
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    for node in nodes:
        _check(node, names, called)
    return tree.body


def _check(node: ast.AST, names: set[str], called: set[int]) -> None:
    match node:
        case ast.Expression() | ast.Load():
            return
        case ast.Constant(value=value):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FormulaError(f"`calculate_output` may use numbers only, not {value!r}.")
        case ast.Name(id=name):
            if name not in names and not (name in FUNCTIONS and id(node) in called):
                known = ", ".join(sorted(names)) or "none"
                raise FormulaError(
                    f"`calculate_output` names `{name}`, which is not one of its graders ({known})."
                )
        case ast.BinOp(op=op) if type(op) in _BINARY:
            return
        case ast.UnaryOp(op=op) if type(op) in _UNARY:
            return
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            low, high = _ARITY.get(name, (1, 1))
            if not low <= len(args) <= high or any(isinstance(a, ast.Starred) for a in args):
                raise FormulaError(f"`{name}` takes {low} to {high} arguments.")
        case ast.Call():
            raise FormulaError(
                "`calculate_output` may call only " + ", ".join(FUNCTIONS) + " (no keywords)."
            )
        case ast.operator() | ast.unaryop():
            if type(node) not in _BINARY and type(node) not in _UNARY:
                raise FormulaError(
                    f"`calculate_output` may not use `{type(node).__name__}`: "
                    "the operators are + - * / ^ (or **)."
                )
        case _:
            raise FormulaError(
                f"`calculate_output` may not use `{type(node).__name__}`: numbers, grader "
                "names, + - * / ^, parentheses and " + ", ".join(FUNCTIONS) + " only."
            )


def evaluate(text: str, values: Mapping[str, float]) -> float:
    """The value of `text` with each grader's name bound to its reward."""
    tree = parse(text, set(values))
    try:
        result = float(_value(tree, values))
    except FormulaError:
        raise
    except (ArithmeticError, ValueError) as e:
        raise FormulaError(f"`calculate_output` has no value here: {e}.") from None
    if not math.isfinite(result):
        raise FormulaError("`calculate_output` is not a finite number here.")
    return result


def _value(node: ast.expr, values: Mapping[str, float]) -> float:
    match node:
        case ast.Constant(value=int() | float() as value):
            return float(value)
        case ast.Name(id=name):
            return float(values[name])
        case ast.BinOp(left=left, op=op, right=right):
            return _BINARY[type(op)](_value(left, values), _value(right, values))
        case ast.UnaryOp(op=op, operand=operand):
            return _UNARY[type(op)](_value(operand, values))
        case ast.Call(func=ast.Name(id=name), args=args):
            return float(FUNCTIONS[name](*(_value(a, values) for a in args)))
    raise FormulaError(f"Unexpected `{type(node).__name__}`.")  # parse() refused it already
