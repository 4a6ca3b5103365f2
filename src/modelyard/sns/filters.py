"""SNS subscription filter policies (FilterPolicy, FilterPolicyScope).

A policy maps attribute names (scope ``MessageAttributes``) or JSON keys of the message
body (scope ``MessageBody``, nested objects allowed) to a list of acceptable values; every
key must match (AND), any value in a list may (OR). Values are strings, numbers, or
operators: ``prefix``, ``suffix``, ``anything-but`` (a value, a list or ``{"prefix": ..}``),
``numeric`` (``["=", 5]``, ``[">", 0, "<=", 10]``), ``exists``, ``equals-ignore-case``
and ``cidr``; ``"$or": [policy, ...]`` at any level.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .topics import invalid

_MISSING = object()
_NUMERIC_OPERATORS = {"=", "<", "<=", ">", ">="}
_OPERATORS = {"prefix", "suffix", "anything-but", "numeric", "exists", "equals-ignore-case",
              "cidr"}


def parse_policy(text: str) -> dict[str, Any]:
    """Parse and check a FilterPolicy; InvalidParameter naming what is wrong."""
    try:
        policy = json.loads(text)
    except ValueError as error:
        raise invalid(f"FilterPolicy: failed to parse JSON ({error})") from None
    if not isinstance(policy, dict) or not policy:
        raise invalid("FilterPolicy: the policy must be a non-empty JSON object")
    _check(policy, "")
    return policy


def _check(policy: dict[str, Any], path: str) -> None:
    for key, rule in policy.items():
        where = f"{path}{key}"
        if key == "$or":
            if not isinstance(rule, list) or len(rule) < 2 or not all(
                    isinstance(item, dict) for item in rule):
                raise invalid("FilterPolicy: $or needs a list of at least two objects")
            for item in rule:
                _check(item, path)
        elif isinstance(rule, dict):
            _check(rule, where + ".")
        elif isinstance(rule, list):
            if not rule:
                raise invalid(f"FilterPolicy: {where}: empty list of values")
            for value in rule:
                _check_value(value, where)
        else:
            raise invalid(f"FilterPolicy: {where}: a match condition must be a list, e.g. "
                          f'["value"] or [{{"prefix": "abc"}}]')


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return
    if not isinstance(value, dict) or len(value) != 1:
        raise invalid(f"FilterPolicy: {where}: match values are strings, numbers or an "
                      "object with one operator")
    ((operator, operand),) = value.items()
    if operator not in _OPERATORS:
        raise invalid(f"FilterPolicy: {where}: unrecognized operator {operator!r}; known: "
                      f"{', '.join(sorted(_OPERATORS))}")
    if operator == "numeric":
        _check_numeric(operand, where)
    elif operator == "exists" and not isinstance(operand, bool):
        raise invalid(f"FilterPolicy: {where}: exists must be true or false")
    elif operator in ("prefix", "suffix", "equals-ignore-case") and not isinstance(operand, str):
        raise invalid(f"FilterPolicy: {where}: {operator} needs a string")
    elif operator == "cidr":
        try:
            ipaddress.ip_network(operand, strict=False)
        except (TypeError, ValueError):
            raise invalid(f"FilterPolicy: {where}: {operand!r} is not a CIDR block") from None


def _check_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise invalid(f"FilterPolicy: {where}: numeric needs [op, number] or "
                      "[op, number, op, number]")
    for index in range(0, len(operand), 2):
        operator, number = operand[index], operand[index + 1]
        if operator not in _NUMERIC_OPERATORS or isinstance(number, bool) or not isinstance(
                number, (int, float)):
            raise invalid(f"FilterPolicy: {where}: bad numeric condition {operand!r}")


def matches_attributes(policy: dict[str, Any], attributes: dict[str, dict[str, Any]]) -> bool:
    """Scope MessageAttributes: ``attributes`` as Publish received them."""
    values: dict[str, Any] = {}
    for name, attribute in attributes.items():
        data_type = attribute.get("DataType", "")
        text = attribute.get("StringValue")
        if data_type.startswith("Number") and text is not None:
            values[name] = _number(text)
        elif data_type.startswith("String.Array") and text is not None:
            try:
                values[name] = json.loads(text)
            except ValueError:
                values[name] = text
        elif data_type.startswith("String"):
            values[name] = text
    return _matches(policy, values)


def matches_body(policy: dict[str, Any], message: str) -> bool:
    """Scope MessageBody: the message must be a JSON object."""
    try:
        body = json.loads(message)
    except ValueError:
        return False
    return isinstance(body, dict) and _matches(policy, body)


def _matches(policy: dict[str, Any], document: dict[str, Any]) -> bool:
    for key, rule in policy.items():
        if key == "$or":
            if not any(_matches(item, document) for item in rule):
                return False
            continue
        value = document.get(key, _MISSING) if isinstance(document, dict) else _MISSING
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not _matches(rule, value):
                return False
        elif not _value_matches(rule, value):
            return False
    return True


def _value_matches(rule: list[Any], value: Any) -> bool:
    candidates = value if isinstance(value, list) else [value]
    if value is _MISSING:
        return any(isinstance(item, dict) and item.get("exists") is False for item in rule)
    return any(_one(condition, candidate) for condition in rule for candidate in candidates)


def _one(condition: Any, value: Any) -> bool:
    if not isinstance(condition, dict):
        if isinstance(condition, (int, float)) and isinstance(value, (int, float)):
            return float(condition) == float(value)
        return condition == value
    ((operator, operand),) = condition.items()
    if operator == "exists":
        return operand is True
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == operand.lower()
    if operator == "anything-but":
        if isinstance(operand, dict):
            return not _one(operand, value)
        excluded = operand if isinstance(operand, list) else [operand]
        return not any(_one(item, value) for item in excluded)
    if operator == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return all(_compare(operand[index], float(value), float(operand[index + 1]))
                   for index in range(0, len(operand), 2))
    if operator == "cidr":
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(operand, strict=False)
        except (TypeError, ValueError):
            return False
    return False


def _compare(operator: str, left: float, right: float) -> bool:
    return {"=": left == right, "<": left < right, "<=": left <= right, ">": left > right,
            ">=": left >= right}[operator]


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
