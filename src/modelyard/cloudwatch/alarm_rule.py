"""Composite alarms' ``AlarmRule``: a small parser and evaluator.

The grammar CloudWatch accepts (keywords in any case)::

    rule     := or
    or       := and ("OR" and)*
    and      := not ("AND" not)*
    not      := "NOT" not | primary
    primary  := "(" rule ")" | "TRUE" | "FALSE" | state "(" alarm ")"
              | "AT_LEAST" "(" count "," ["NOT"] state "," "(" alarm ("," alarm)* ")" ")"
    state    := "ALARM" | "OK" | "INSUFFICIENT_DATA"
    count    := an integer, or a percentage such as 50%
    alarm    := a name or an alarm ARN, bare or in double quotes

``ALARM(x)`` is true while alarm ``x`` is in that state; ``AT_LEAST(2, ALARM, (a, b, c))``
while at least two of them are (``NOT ALARM``: not in ALARM). A composite alarm is in
ALARM while its rule is true and OK otherwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..api.errors import AwsError

STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")
_KEYWORDS = {"AND", "OR", "NOT", "TRUE", "FALSE"}
_ARN = re.compile(r"^arn:[^:]+:cloudwatch:[^:]*:[^:]*:alarm:(?P<name>.+)$")
_TOKEN = re.compile(r'\s*(?:(?P<paren>[(),])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s(),"]+))')


class RuleError(AwsError):
    def __init__(self, message: str) -> None:
        super().__init__("ValidationError", f"The AlarmRule is not valid: {message}")


@dataclass(frozen=True)
class Node:
    """One node of a parsed rule: op is AND, OR, NOT, CONST or a state name."""

    op: str
    children: tuple["Node", ...] = ()
    value: bool = False
    alarm: str = ""
    # AT_LEAST: how many (or what percentage) of ``names`` must be in ``state``
    names: tuple[str, ...] = ()
    count: float = 0.0
    percent: bool = False
    state: str = ""
    negate: bool = False


def alarm_name_of(reference: str) -> str:
    """An alarm named in a rule, by name or by ARN -> its name."""
    match = _ARN.match(reference)
    return match.group("name") if match else reference


def parse(rule: str) -> Node:
    tokens = _tokenize(rule)
    parser = _Parser(tokens)
    node = parser.rule()
    if parser.position < len(tokens):
        raise RuleError(f"unexpected {tokens[parser.position][1]!r} after a complete "
                        "expression; join expressions with AND or OR.")
    return node


def referenced_alarms(node: Node) -> list[str]:
    """The alarm names a rule reads, in order of first mention."""
    names: list[str] = []

    def walk(current: Node) -> None:
        if current.op in STATES and current.alarm not in names:
            names.append(current.alarm)
        for name in current.names:
            if name not in names:
                names.append(name)
        for child in current.children:
            walk(child)

    walk(node)
    return names


def evaluate(node: Node, state_of: Callable[[str], str | None]) -> bool:
    """True when the rule holds; ``state_of(name)`` is None for an alarm that is gone."""
    if node.op == "CONST":
        return node.value
    if node.op == "NOT":
        return not evaluate(node.children[0], state_of)
    if node.op == "AND":
        return all(evaluate(child, state_of) for child in node.children)
    if node.op == "OR":
        return any(evaluate(child, state_of) for child in node.children)
    if node.op == "AT_LEAST":
        matching = sum((state_of(name) == node.state) != node.negate for name in node.names)
        needed = (math.ceil(node.count * len(node.names) / 100.0) if node.percent
                  else node.count)
        return matching >= needed
    return state_of(node.alarm) == node.op


def _tokenize(rule: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = rule.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise RuleError(f"cannot read the rule at character {position + 1}: "
                            f"{text[position:position + 20]!r} (an unclosed quote?).")
        if match.group("paren"):
            tokens.append(("paren", match.group("paren")))
        elif match.group("quoted") is not None:
            tokens.append(("name", re.sub(r"\\(.)", r"\1", match.group("quoted"))))
        else:
            tokens.append(("word", match.group("word")))
        position = match.end()
    if not tokens:
        raise RuleError("the rule is empty; write e.g. ALARM(\"my-alarm\") OR TRUE.")
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def _peek_word(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "word":
            return self.tokens[self.position][1].upper()
        return None

    def _expect(self, value: str, after: str) -> None:
        if (self.position >= len(self.tokens)
                or self.tokens[self.position] != ("paren", value)):
            found = (repr(self.tokens[self.position][1]) if self.position < len(self.tokens)
                     else "the end of the rule")
            raise RuleError(f"expected {value!r} {after}, found {found}.")
        self.position += 1

    def rule(self) -> Node:
        return self._binary("OR", self._and)

    def _and(self) -> Node:
        return self._binary("AND", self._not)

    def _binary(self, keyword: str, operand: Callable[[], Node]) -> Node:
        children = [operand()]
        while self._peek_word() == keyword:
            self.position += 1
            children.append(operand())
        return children[0] if len(children) == 1 else Node(keyword, tuple(children))

    def _not(self) -> Node:
        if self._peek_word() == "NOT":
            self.position += 1
            return Node("NOT", (self._not(),))
        return self._primary()

    def _primary(self) -> Node:
        if self.position >= len(self.tokens):
            raise RuleError("the rule ends where an expression is expected.")
        kind, value = self.tokens[self.position]
        if (kind, value) == ("paren", "("):
            self.position += 1
            node = self.rule()
            self._expect(")", "to close a parenthesis")
            return node
        word = value.upper() if kind == "word" else ""
        if word in ("TRUE", "FALSE"):
            self.position += 1
            return Node("CONST", value=word == "TRUE")
        if word in STATES:
            self.position += 1
            self._expect("(", f"after {word}")
            if self.position >= len(self.tokens) or self.tokens[self.position][0] == "paren":
                raise RuleError(f"{word}(...) needs an alarm name or ARN.")
            name_kind, name = self.tokens[self.position]
            if name_kind == "word" and name.upper() in _KEYWORDS | set(STATES):
                raise RuleError(f"{word}({name}) names no alarm; quote alarm names that "
                                "are keywords.")
            self.position += 1
            self._expect(")", f"after the alarm name in {word}(...) (put names with spaces "
                         "or parentheses in double quotes)")
            return Node(word, alarm=alarm_name_of(name))
        if word == "AT_LEAST":
            self.position += 1
            return self._at_least()
        raise RuleError(f"unexpected {value!r}; expected ALARM(...), OK(...), "
                        "INSUFFICIENT_DATA(...), TRUE, FALSE, NOT or a parenthesis.")

    def _word(self, what: str) -> str:
        if self.position >= len(self.tokens) or self.tokens[self.position][0] != "word":
            found = (repr(self.tokens[self.position][1]) if self.position < len(self.tokens)
                     else "the end of the rule")
            raise RuleError(f"expected {what} in AT_LEAST(...), found {found}.")
        self.position += 1
        return self.tokens[self.position - 1][1]

    def _at_least(self) -> Node:
        """AT_LEAST(M, [NOT] STATE, (alarm, ...)) after its keyword."""
        usage = "write AT_LEAST(2, ALARM, (a, b, c)) or AT_LEAST(50%, NOT OK, (a, b))"
        self._expect("(", "after AT_LEAST")
        text = self._word("a count such as 2 or 50%")
        percent = text.endswith("%")
        try:
            count = float(text[:-1] if percent else text)
        except ValueError:
            raise RuleError(f"AT_LEAST needs a count or a percentage first, not {text!r}; "
                            f"{usage}.") from None
        if count < 0 or (not percent and not count.is_integer()) or (percent and count > 100):
            raise RuleError(f"AT_LEAST's count {text!r} must be a whole number or a "
                            "percentage between 0% and 100%.")
        self._expect(",", "after AT_LEAST's count")
        state = self._word("a state").upper()
        negate = state == "NOT"
        if negate:
            state = self._word("a state after NOT").upper()
        if state not in STATES:
            raise RuleError(f"AT_LEAST's state must be ALARM, OK or INSUFFICIENT_DATA "
                            f"(optionally after NOT), not {state!r}; {usage}.")
        self._expect(",", "after AT_LEAST's state")
        self._expect("(", "to open AT_LEAST's list of alarms")
        names = []
        while True:
            if self.position >= len(self.tokens) or self.tokens[self.position][0] == "paren":
                raise RuleError(f"AT_LEAST's list needs alarm names; {usage}.")
            names.append(alarm_name_of(self.tokens[self.position][1]))
            self.position += 1
            if self.position < len(self.tokens) and self.tokens[self.position] == ("paren", ","):
                self.position += 1
                continue
            break
        self._expect(")", "to close AT_LEAST's list of alarms")
        self._expect(")", "to close AT_LEAST(...)")
        return Node("AT_LEAST", names=tuple(names), count=count, percent=percent,
                    state=state, negate=negate)
