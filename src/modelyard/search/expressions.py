"""Compile a SageMaker ``SearchExpression`` into a predicate over Describe documents.

A filter ``Name`` is a dotted path into the searchable record (botocore's ``SearchRecord``
member shape for the resource type): structures name members, maps take any key, lists
match when any element does. Two virtual roots follow SageMaker: ``Tags.<key>`` (the
resource's tags as a map) and, for training jobs, ``Metrics.<name>`` (the final value of
each metric in ``FinalMetricDataList``). Values compare as numbers when both sides are
numbers, as times when the path is a timestamp, and as strings otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.model import Shape

from ..api.errors import validation_error
from ..api.shapes import parse_timestamp

Document = dict[str, Any]
Predicate = Callable[[Document], bool]

_VALUELESS = {"Exists", "NotExists"}
_MISSING = object()
VIRTUAL = {"Tags": "__tags", "Metrics": "__metrics"}


def search_view(document: Document) -> Document:
    """The document plus the virtual Tags.<key> / Metrics.<name> maps filters read."""
    view = dict(document)
    view[VIRTUAL["Tags"]] = {tag.get("Key"): tag.get("Value")
                             for tag in document.get("Tags") or [] if isinstance(tag, dict)}
    view[VIRTUAL["Metrics"]] = {metric.get("MetricName"): metric.get("Value")
                                for metric in document.get("FinalMetricDataList") or []
                                if isinstance(metric, dict)}
    return view


class PathInfo:
    """A validated path: how to read its values from a document, and the leaf's type."""

    def __init__(self, parts: list[str], leaf_type: str) -> None:
        self.parts = parts
        self.leaf_type = leaf_type  # a botocore type name: string, timestamp, double, ...
        if len(parts) <= 2:  # the hot paths of large searches: one or two dict levels
            self.values = self._shallow_values  # type: ignore[method-assign]

    def _shallow_values(self, document: Any) -> list[Any]:
        item = document.get(self.parts[0])
        if len(self.parts) == 2:
            if type(item) is dict:
                item = item.get(self.parts[1])
            elif item is not None:
                return self._deep_values(document)  # a list on the way: fan out
        if item is None:
            return []
        if type(item) is list:
            return [element for element in item if element is not None]
        return [item]

    def values(self, document: Any) -> list[Any]:
        """Every value the path reaches (lists fan out); empty when absent."""
        return self._deep_values(document)

    def _deep_values(self, document: Any) -> list[Any]:
        item = document  # the common case first: nested dicts down to a scalar
        for part in self.parts:
            if not isinstance(item, dict):
                break
            item = item.get(part, _MISSING)
            if item is _MISSING or item is None:
                return []
        else:
            if isinstance(item, list):
                return [element for element in item if element is not None]
            return [item]
        current = [document]
        for part in self.parts:
            following: list[Any] = []
            for item in current:
                if isinstance(item, list):
                    for element in item:
                        if isinstance(element, dict) and part in element:
                            following.append(element[part])
                elif isinstance(item, dict) and part in item:
                    following.append(item[part])
            current = following
            if not current:
                return []
        flat: list[Any] = []
        for item in current:
            if isinstance(item, list):
                flat.extend(item)
            elif item is not None:
                flat.append(item)
        return flat


def resolve_path(record: Shape, name: str, resource: str) -> PathInfo:
    """Check ``name`` against the record shape; a ValidationException names a bad segment."""
    if not name or any(not part for part in name.split(".")):
        raise validation_error(f"Invalid property name '{name}' for resource {resource}: "
                               "use a dotted path such as TrainingJobName or Tags.team.")
    parts = name.split(".")
    shape: Shape | None = record
    if len(parts) == 2 and parts[0] == "Tags" or (
            len(parts) == 2 and parts[0] == "Metrics" and "FinalMetricDataList" in _members(record)):
        # the virtual maps the store's search view adds (see ``search_view``)
        return PathInfo([VIRTUAL[parts[0]], parts[1]],
                        "double" if parts[0] == "Metrics" else "string")
    for index, part in enumerate(parts):
        while shape is not None and shape.type_name == "list":
            shape = shape.member
        if shape is None or shape.type_name == "map":
            shape = shape.value if shape is not None else None
            continue
        if shape.type_name != "structure" or part not in shape.members:
            known = ", ".join(sorted(_members(shape))[:25]) if shape is not None else ""
            where = ".".join(parts[:index]) or resource
            hint = f" Properties of {where} include: {known}." if known else ""
            raise validation_error(
                f"Invalid property name '{name}' for resource {resource}: '{part}' is not a "
                f"searchable property of {where}.{hint}")
        shape = shape.members[part]
    while shape is not None and shape.type_name == "list":
        shape = shape.member
    return PathInfo(parts, shape.type_name if shape is not None else "string")


def _members(shape: Shape | None) -> list[str]:
    return list(getattr(shape, "members", {}) or {})


def compile_expression(expression: dict[str, Any], record: Shape, resource: str) -> Predicate:
    """The expression as a predicate; malformed expressions raise ValidationException."""
    filters = [_compile_filter(item, record, resource, None)
               for item in expression.get("Filters") or []]
    nested = [_compile_nested(item, record, resource)
              for item in expression.get("NestedFilters") or []]
    subs = [compile_expression(item, record, resource)
            for item in expression.get("SubExpressions") or []]
    parts = filters + nested + subs
    if not parts:
        raise validation_error(
            "A SearchExpression needs at least one of Filters, NestedFilters or SubExpressions.")
    if len(parts) == 1:
        return parts[0]
    if expression.get("Operator", "And") == "Or":
        def either(document: Document) -> bool:
            for part in parts:
                if part(document):
                    return True
            return False
        return either

    def both(document: Document) -> bool:
        for part in parts:
            if not part(document):
                return False
        return True
    return both


def _compile_nested(item: dict[str, Any], record: Shape, resource: str) -> Predicate:
    prefix = item["NestedPropertyName"]
    path = resolve_path(record, prefix, resource)
    container = _shape_at(record, prefix.split("."))
    if container is None or container.type_name != "list":
        raise validation_error(
            f"NestedPropertyName '{prefix}' is not a list property of {resource}: nested "
            "filters apply to the elements of a list such as InputDataConfig.")
    element_shape = container.member
    inner = []
    for spec in item["Filters"]:
        name = spec["Name"]
        if not name.startswith(prefix + "."):
            raise validation_error(
                f"Filter name '{name}' in NestedFilters for '{prefix}' must start with "
                f"'{prefix}.'.")
        inner.append(_compile_filter({**spec, "Name": name[len(prefix) + 1:]},
                                     element_shape, f"{resource}.{prefix}", name))

    def matches(document: Document) -> bool:
        return any(isinstance(element, dict) and all(test(element) for test in inner)
                   for element in path.values(document))
    return matches


def _shape_at(record: Shape, parts: list[str]) -> Shape | None:
    shape: Shape | None = record
    for part in parts:
        while shape is not None and shape.type_name == "list":
            shape = shape.member
        if shape is None or shape.type_name != "structure":
            return None
        shape = shape.members.get(part)
    return shape


def _compile_filter(spec: dict[str, Any], record: Shape, resource: str,
                    shown_name: str | None) -> Predicate:
    name = spec["Name"]
    shown = shown_name or name
    operator = spec.get("Operator", "Equals")
    path = resolve_path(record, name, resource)
    value = spec.get("Value")
    if operator in _VALUELESS:
        exists = operator == "Exists"
        return lambda document: bool(path.values(document)) == exists
    if value is None:
        raise validation_error(f"Filter '{shown}' with Operator {operator} needs a Value.")
    if operator == "In":
        wanted = [_operand(part.strip(), path.leaf_type) for part in value.split(",")]
        return lambda document: any(
            _compare(found, want) == 0 for found in path.values(document) for want in wanted)
    if operator == "Contains":
        needle = value
        return lambda document: any(needle in _as_text(found) for found in path.values(document))
    operand = _operand(value, path.leaf_type)
    if path.leaf_type == "timestamp" and operand is None:
        raise validation_error(f"Filter '{shown}': '{value}' is not a timestamp; pass ISO 8601 "
                               "(2024-01-31T12:00:00Z) or seconds since the epoch.")
    test = _COMPARISONS[operator]
    number = _number(operand)
    values = path.values

    def order_of(found: Any) -> int | None:
        if number is not None and type(found) in (int, float):  # the hot path: numbers
            return (found > number) - (found < number)
        return _compare(found, operand)

    if operator == "NotEquals":
        return lambda document: not any(order_of(found) == 0 for found in values(document))
    if operator == "Equals" and number is None and isinstance(operand, str):
        def equals(document: Document) -> bool:
            for found in values(document):
                if found == operand or (type(found) is not str and order_of(found) == 0):
                    return True
            return False
        return equals

    def compares(document: Document) -> bool:
        for found in values(document):
            order = order_of(found)
            if order is not None and test(order):
                return True
        return False
    return compares


_COMPARISONS: dict[str, Callable[[int], bool]] = {
    "Equals": lambda order: order == 0,
    "NotEquals": lambda order: order != 0,
    "GreaterThan": lambda order: order > 0,
    "GreaterThanOrEqualTo": lambda order: order >= 0,
    "LessThan": lambda order: order < 0,
    "LessThanOrEqualTo": lambda order: order <= 0,
}


def _operand(value: str, leaf_type: str) -> Any:
    if leaf_type == "timestamp":
        return parse_timestamp(value)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _compare(found: Any, operand: Any) -> int | None:
    """-1, 0 or 1 ordering ``found`` against ``operand``; None when they do not compare."""
    if operand is None or isinstance(found, (dict, list)):
        return None
    left, right = _number(found), _number(operand)
    if left is not None and right is not None:
        return (left > right) - (left < right)
    text, other = _as_text(found), _as_text(operand)
    if isinstance(found, bool):
        text, other = text, other.lower()
    return (text > other) - (text < other)


def sort_key(path: PathInfo) -> Callable[[Document], tuple[int, Any]]:
    """Order by the path's first value: numbers numerically, others as text; absent last."""
    def key(document: Document) -> tuple[int, Any]:
        values = path.values(document)
        if not values:
            return (2, 0.0)
        number = _number(values[0])
        if number is not None:
            return (0, number)
        return (1, _as_text(values[0]))
    return key
