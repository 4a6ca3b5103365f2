"""Metric math expressions: a tokenizer and a recursive-descent parser to a small syntax tree.

The language is CloudWatch's: numbers, query ids (``m1``, ``errors``), strings
(``'text'`` or ``"text"``), ``[a, b]`` arrays, function calls (``SUM(METRICS())``,
``FILL(m1, REPEAT)``), unary ``-``, and by increasing precedence ``OR``/``||``,
``AND``/``&&``, ``NOT``/``!``, comparisons (``< <= > >= == !=``), ``+ -``, ``* /``,
and ``^`` (right-associative). Evaluation lives in ``metric_math``; nothing here runs
code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LENGTH = 2048
MAX_DEPTH = 64


class ExpressionError(ValueError):
    """A syntax or evaluation error, with the position (0-based) in the text when known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position

    def describe(self) -> str:
        where = f" (at character {self.position + 1})" if self.position is not None else ""
        return f"{self.args[0]}{where}"


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Ref:
    """A query id, or a bare keyword such as REPEAT or LINEAR."""

    name: str
    position: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Node", ...]
    position: int


@dataclass(frozen=True)
class Array:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Unary:
    op: str
    operand: "Node"


@dataclass(frozen=True)
class Binary:
    op: str
    left: "Node"
    right: "Node"


Node = Number | Text | Ref | Call | Array | Unary | Binary

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op><=|>=|==|!=|&&|\|\||[-+*/^<>()\[\],!])
""", re.VERBOSE)
_WORD_OPERATORS = {"AND": "&&", "OR": "||", "NOT": "!"}
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, string, op, end
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionError(f"unexpected character {text[position]!r}", position)
        kind = match.lastgroup or ""
        value = match.group(0)
        if kind == "name" and value.upper() in _WORD_OPERATORS:
            kind, value = "op", _WORD_OPERATORS[value.upper()]
        if kind != "space":
            tokens.append(Token(kind, value, position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def parse(text: str) -> Node:
    """The syntax tree of ``text``; ExpressionError saying what is wrong and where."""
    parser = _Parser(tokenize(text))
    node = parser.expression()
    token = parser.peek()
    if token.kind != "end":
        raise ExpressionError(f"unexpected {token.text!r} after a complete expression",
                              token.position)
    return node


def references(node: Node) -> set[str]:
    """The query ids a tree names (METRICS() is resolved by the evaluator)."""
    if isinstance(node, Ref):
        return {node.name}
    if isinstance(node, Call):
        return set().union(*(references(arg) for arg in node.args)) if node.args else set()
    if isinstance(node, Array):
        return set().union(*(references(item) for item in node.items)) if node.items else set()
    if isinstance(node, Unary):
        return references(node.operand)
    if isinstance(node, Binary):
        return references(node.left) | references(node.right)
    return set()


def calls(node: Node) -> set[str]:
    """The function names a tree calls."""
    if isinstance(node, Call):
        found = {node.name}
        for arg in node.args:
            found |= calls(arg)
        return found
    if isinstance(node, Array):
        return set().union(*(calls(item) for item in node.items)) if node.items else set()
    if isinstance(node, Unary):
        return calls(node.operand)
    if isinstance(node, Binary):
        return calls(node.left) | calls(node.right)
    return set()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, *ops: str) -> Token | None:
        token = self.peek()
        if token.kind == "op" and token.text in ops:
            return self.take()
        return None

    def expect(self, op: str) -> Token:
        token = self.peek()
        if token.kind == "op" and token.text == op:
            return self.take()
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        raise ExpressionError(f"expected {op!r} but found {found}", token.position)

    def _nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"the expression nests deeper than {MAX_DEPTH} levels",
                                  self.peek().position)

    def expression(self) -> Node:
        self._nested()
        try:
            return self._or()
        finally:
            self.depth -= 1

    def _or(self) -> Node:
        node = self._and()
        while self.accept("||"):
            node = Binary("||", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self.accept("&&"):
            node = Binary("&&", node, self._not())
        return node

    def _not(self) -> Node:
        if self.accept("!"):
            self._nested()
            try:
                return Unary("!", self._not())
            finally:
                self.depth -= 1
        return self._comparison()

    def _comparison(self) -> Node:
        node = self._additive()
        while True:
            token = self.accept(*_COMPARISONS)
            if token is None:
                return node
            node = Binary(token.text, node, self._additive())

    def _additive(self) -> Node:
        node = self._multiplicative()
        while True:
            token = self.accept("+", "-")
            if token is None:
                return node
            node = Binary(token.text, node, self._multiplicative())

    def _multiplicative(self) -> Node:
        node = self._unary()
        while True:
            token = self.accept("*", "/")
            if token is None:
                return node
            node = Binary(token.text, node, self._unary())

    def _unary(self) -> Node:
        token = self.accept("-", "+")
        if token is not None:
            self._nested()
            try:
                operand = self._unary()
            finally:
                self.depth -= 1
            return Unary("-", operand) if token.text == "-" else operand
        return self._power()

    def _power(self) -> Node:
        base = self._primary()
        if self.accept("^"):
            self._nested()
            try:
                return Binary("^", base, self._unary())
            finally:
                self.depth -= 1
        return base

    def _primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return Number(float(token.text))
        if token.kind == "string":
            return Text(token.text[1:-1])
        if token.kind == "name":
            if self.accept("("):
                args: list[Node] = []
                if not self.accept(")"):
                    args.append(self.expression())
                    while self.accept(","):
                        args.append(self.expression())
                    self.expect(")")
                return Call(token.text.upper(), tuple(args), token.position)
            return Ref(token.text, token.position)
        if token.kind == "op" and token.text == "(":
            node = self.expression()
            self.expect(")")
            return node
        if token.kind == "op" and token.text == "[":
            items = [self.expression()]
            while self.accept(","):
                items.append(self.expression())
            self.expect("]")
            return Array(tuple(items))
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        raise ExpressionError(f"expected a number, a metric id, a function or '(' but found "
                              f"{found}", token.position)
