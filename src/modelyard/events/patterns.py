"""EventBridge event patterns: checked when a rule is written, matched against events.

A pattern is a JSON object mirroring the events it selects. A field whose value is an
object descends into the event; a field whose value is an array lists what the event's
value may be (any one of them). Array entries are exact values (strings, numbers,
booleans, null) or content filters, objects with one key: ``prefix``, ``suffix``,
``anything-but``, ``numeric``, ``exists``, ``equals-ignore-case``, ``wildcard``, ``cidr``.
``{"$or": [pattern, pattern, ...]}`` inside an object matches when any branch does. When
the event's value is an array, the field matches when any element does; an array of
objects is matched element by element, so the fields of one sub-pattern must all match the
same element.

``compile_pattern`` checks a pattern and raises ``InvalidPattern`` (a reason in AWS's
words) when it is not valid; ``matches`` runs a checked pattern against an event.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from ..api.errors import AwsError

_MISSING = object()
_FILTERS = ("prefix", "suffix", "anything-but", "numeric", "exists", "equals-ignore-case",
            "wildcard", "cidr")
_NUMERIC_OPERATORS = ("=", "<", "<=", ">", ">=")
MAX_DEPTH = 64


class InvalidPattern(AwsError):
    """The client's pattern is not valid: InvalidEventPatternException, as AWS answers."""

    def __init__(self, reason: str) -> None:
        super().__init__("InvalidEventPatternException",
                         f"Event pattern is not valid. Reason: {reason}")


def compile_pattern(text: str) -> dict[str, Any]:
    """Parse and check an EventPattern string; returns the pattern as a dict."""
    try:
        pattern = json.loads(text)
    except (TypeError, ValueError) as error:
        raise InvalidPattern(f"the pattern is not JSON ({error})") from None
    except RecursionError:
        raise InvalidPattern("the pattern is nested too deeply") from None
    if not isinstance(pattern, dict):
        raise InvalidPattern("Filter is not an object")
    if not pattern:
        raise InvalidPattern("Empty pattern: a pattern must name at least one field")
    try:
        _check_object(pattern, "")
    except RecursionError:
        raise InvalidPattern("the pattern is nested too deeply") from None
    return pattern


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether the event (a dict) matches a pattern that ``compile_pattern`` accepted."""
    return _match_object(pattern, event)


# --- checking ----------------------------------------------------------------------------


def _check_object(pattern: dict[str, Any], path: str, depth: int = 1) -> None:
    if depth > MAX_DEPTH:
        raise InvalidPattern(f"the pattern is nested more than {MAX_DEPTH} levels deep")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if _is_or(key, value):
            if len(value) < 2:
                raise InvalidPattern(f'"$or" at "{where}" needs an array of at least two '
                                     "objects")
            for branch in value:
                if not branch:
                    raise InvalidPattern(f'an empty object in "$or" at "{where}"')
                _check_object(branch, path, depth + 1)
        elif isinstance(value, dict):
            if not value:
                raise InvalidPattern(f'"{where}" is an empty object')
            _check_object(value, where, depth + 1)
        elif isinstance(value, list):
            if not value:
                raise InvalidPattern(f'Empty arrays are not allowed (at "{where}")')
            for entry in value:
                _check_entry(entry, where)
        else:
            raise InvalidPattern(f'"{where}" must be an object or an array')


def _is_or(key: str, value: Any) -> bool:
    """``$or`` with an array of sub-patterns (not of content filters) is the or-rule."""
    return (key == "$or" and isinstance(value, list) and bool(value)
            and all(isinstance(item, dict) for item in value)
            and not all(_is_filter(item) for item in value))


def _is_filter(entry: dict[str, Any]) -> bool:
    return len(entry) == 1 and next(iter(entry)) in _FILTERS


def _check_entry(entry: Any, where: str) -> None:
    if entry is None or isinstance(entry, (str, bool, int, float)):
        return
    if isinstance(entry, list):
        raise InvalidPattern(f'Match value must be String, number, true, false, or null '
                             f'(an array inside the array at "{where}")')
    if len(entry) != 1:
        raise InvalidPattern(f'a content filter at "{where}" must have exactly one key, '
                             f"one of {', '.join(_FILTERS)}")
    kind, operand = next(iter(entry.items()))
    if kind not in _FILTERS:
        raise InvalidPattern(f'Unrecognized match type {kind} (at "{where}")')
    _FILTER_CHECKS[kind](operand, where)


def _check_prefix_suffix(kind: str):  # noqa: ANN202 - a checker
    def check(operand: Any, where: str) -> None:
        if isinstance(operand, dict) and set(operand) == {"equals-ignore-case"}:
            operand = operand["equals-ignore-case"]
        if not isinstance(operand, str):
            raise InvalidPattern(f'{kind} match pattern must be a string, not '
                                 f'{_json(operand)} (at "{where}")')
    return check


def _check_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise InvalidPattern(f'anything-but at "{where}" takes one of prefix, suffix, '
                                 "equals-ignore-case, wildcard")
        kind, value = next(iter(operand.items()))
        if kind in ("prefix", "suffix"):
            if not isinstance(value, str) or not value:
                raise InvalidPattern(f'Value of anything-but {kind} must be a non-empty string '
                                     f'(at "{where}")')
        elif kind in ("equals-ignore-case", "wildcard"):
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(item, str) for item in values):
                raise InvalidPattern(f"Inside anything-but/{kind} list, number|start|null|"
                                     f'boolean is not supported (at "{where}")')
            if kind == "wildcard":
                for item in values:
                    _check_wildcard(item, where)
        else:
            raise InvalidPattern(f'Unsupported anything-but pattern: {kind} (at "{where}")')
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise InvalidPattern(f'anything-but at "{where}" needs at least one value')
    for value in values:
        if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
            raise InvalidPattern(f"Inside anything but list, start|null|boolean is not "
                                 f'supported (at "{where}")')
    if len({type(value) is str for value in values}) > 1:
        raise InvalidPattern(f'anything-but at "{where}" mixes strings and numbers')


def _check_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise InvalidPattern(f'Value of numeric must be an array of one or two '
                             f'[operator, number] pairs (at "{where}")')
    pairs = [(operand[i], operand[i + 1]) for i in range(0, len(operand), 2)]
    for operator, number in pairs:
        if operator not in _NUMERIC_OPERATORS:
            raise InvalidPattern(f'Unrecognized numeric range operator: {_json(operator)} '
                                 f'(at "{where}")')
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise InvalidPattern(f'Value of {operator} must be numeric (at "{where}")')
    if len(pairs) == 2:
        (low_op, low), (high_op, high) = pairs
        if low_op not in (">", ">=") or high_op not in ("<", "<="):
            raise InvalidPattern(f'a numeric range must be a lower bound (> or >=) then an '
                                 f'upper bound (< or <=) (at "{where}")')
        if low >= high:
            raise InvalidPattern(f'Bottom must be less than top (at "{where}")')


def _check_exists(operand: Any, where: str) -> None:
    if not isinstance(operand, bool):
        raise InvalidPattern(f'exists match pattern must be either true or false '
                             f'(at "{where}")')


def _check_ignore_case(operand: Any, where: str) -> None:
    if not isinstance(operand, str):
        raise InvalidPattern(f'equals-ignore-case match pattern must be a string '
                             f'(at "{where}")')


def _check_wildcard_operand(operand: Any, where: str) -> None:
    if not isinstance(operand, str):
        raise InvalidPattern(f'wildcard match pattern must be a string (at "{where}")')
    _check_wildcard(operand, where)


def _check_wildcard(text: str, where: str) -> None:
    if "**" in text:
        raise InvalidPattern(f'Consecutive wildcard characters at pos {text.index("**") + 1} '
                             f'(at "{where}")')
    index = 0
    while index < len(text):
        if text[index] == "\\":
            if index + 1 >= len(text) or text[index + 1] not in "*\\":
                raise InvalidPattern(f"Invalid escape character at pos {index + 1} in wildcard "
                                     f'{text!r} (at "{where}")')
            index += 1
        index += 1


def _check_cidr(operand: Any, where: str) -> None:
    if not isinstance(operand, str):
        raise InvalidPattern(f'prefix/cidr match pattern must be a string (at "{where}")')
    try:
        ipaddress.ip_network(operand, strict=False)
    except ValueError:
        raise InvalidPattern(f'Nonstandard IP address: {operand} (at "{where}")') from None


_FILTER_CHECKS = {
    "prefix": _check_prefix_suffix("prefix"),
    "suffix": _check_prefix_suffix("suffix"),
    "anything-but": _check_anything_but,
    "numeric": _check_numeric,
    "exists": _check_exists,
    "equals-ignore-case": _check_ignore_case,
    "wildcard": _check_wildcard_operand,
    "cidr": _check_cidr,
}


def _json(value: Any) -> str:
    return json.dumps(value)


# --- matching ----------------------------------------------------------------------------


def _match_object(pattern: dict[str, Any], event: Any) -> bool:
    if isinstance(event, list):
        candidates = [item for item in event if isinstance(item, dict)]
        if candidates:
            return any(_match_object(pattern, item) for item in candidates)
        event = _MISSING
    for key, value in pattern.items():
        if _is_or(key, value):
            if not any(_match_object(branch, event) for branch in value):
                return False
            continue
        child = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(value, dict):
            if not _match_object(value, child):
                return False
        elif not _match_leaf(value, child):
            return False
    return True


def _leaves(value: Any) -> list[Any]:
    """The leaf values at a field: the value itself, or the leaves of (nested) arrays."""
    found: list[Any] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        elif item is not _MISSING and not isinstance(item, dict):
            found.append(item)
    return found


def _match_leaf(entries: list[Any], value: Any) -> bool:
    leaves = _leaves(value)
    for entry in entries:
        if isinstance(entry, dict):
            kind, operand = next(iter(entry.items()))
            if kind == "exists":
                if bool(leaves) == operand:
                    return True
                continue
            if any(_FILTER_MATCH[kind](operand, leaf) for leaf in leaves):
                return True
        elif any(_equal(entry, leaf) for leaf in leaves):
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(expected: Any, actual: Any) -> bool:
    if expected is None or isinstance(expected, (bool, str)):
        return type(expected) is type(actual) and expected == actual
    return _is_number(actual) and float(expected) == float(actual)


def _match_prefix(operand: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict):
        return value.casefold().startswith(operand["equals-ignore-case"].casefold())
    return value.startswith(operand)


def _match_suffix(operand: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict):
        return value.casefold().endswith(operand["equals-ignore-case"].casefold())
    return value.endswith(operand)


def _match_anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        kind, argument = next(iter(operand.items()))
        if not isinstance(value, str):
            return False
        if kind == "prefix":
            return not value.startswith(argument)
        if kind == "suffix":
            return not value.endswith(argument)
        arguments = argument if isinstance(argument, list) else [argument]
        if kind == "equals-ignore-case":
            return all(value.casefold() != item.casefold() for item in arguments)
        return not any(_wildcard_regex(item).fullmatch(value) for item in arguments)
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_equal(item, value) for item in excluded)


def _match_numeric(operand: list[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    number = float(value)
    for index in range(0, len(operand), 2):
        operator, bound = operand[index], float(operand[index + 1])
        if not {"=": number == bound, "<": number < bound, "<=": number <= bound,
                ">": number > bound, ">=": number >= bound}[operator]:
            return False
    return True


def _match_ignore_case(operand: str, value: Any) -> bool:
    return isinstance(value, str) and value.casefold() == operand.casefold()


def _match_wildcard(operand: str, value: Any) -> bool:
    return isinstance(value, str) and _wildcard_regex(operand).fullmatch(value) is not None


def _wildcard_regex(text: str) -> re.Pattern[str]:
    parts, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            parts.append(re.escape(text[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _match_cidr(operand: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(operand, strict=False)
    except ValueError:
        return False


_FILTER_MATCH = {
    "prefix": _match_prefix,
    "suffix": _match_suffix,
    "anything-but": _match_anything_but,
    "numeric": _match_numeric,
    "equals-ignore-case": _match_ignore_case,
    "wildcard": _match_wildcard,
    "cidr": _match_cidr,
}
