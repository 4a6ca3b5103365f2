"""The contract from botocore's service models: input validation and output shaping.

Nothing here knows a particular operation. ``parse_input`` checks a decoded request
against the operation's input shape (required members, types, enums, lengths, ranges,
patterns) and converts wire values to Python ones; ``shape_output`` keeps only the
members the output shape defines and converts values for the wire.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
import re
from datetime import datetime, timezone
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from .errors import AwsError

log = logging.getLogger(__name__)

_MAX_REPORTED_ERRORS = 10
_MAX_ENUM_SHOWN = 40
# What AWS's services (Java) can hold: 32-bit integers, 64-bit longs, years 1 to 9999.
_INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_EPOCH_RANGE = (-62135596800.0, 253402300799.999)
# What a value of a shape looks like, where its pattern alone does not say it plainly.
_PATTERN_HINTS = {
    "RoleArn": " (a role ARN looks like arn:aws:iam::<12-digit account id>:role/<optional "
               "path/>name, e.g. arn:aws:iam::123456789012:role/SageMakerRole)",
}


@functools.lru_cache(maxsize=None)
def service_model(name: str) -> ServiceModel:
    return _botocore_session().get_service_model(name)


@functools.lru_cache(maxsize=1)
def _botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.lru_cache(maxsize=None)
def operation_model(service: str, operation: str) -> OperationModel | None:
    model = service_model(service)
    if operation not in model.operation_names:
        return None
    return model.operation_model(operation)


class _Collector:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_abbreviate(value)}'"
        self.errors.append(
            f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        count = len(self.errors)
        noun = "error" if count == 1 else "errors"
        details = "; ".join(self.errors[:_MAX_REPORTED_ERRORS])
        raise AwsError("ValidationException", f"{count} validation {noun} detected: {details}")


def parse_input(shape: Shape | None, value: Any, *, strings: bool = False) -> dict[str, Any]:
    """Validate ``value`` against ``shape`` and return it with Python values.

    ``strings`` is for protocols whose scalars arrive as text (query, headers).
    Members the model does not define are dropped: a newer client may send them.
    """
    if shape is None:
        return {}
    collector = _Collector()
    result = _parse(shape, value if value is not None else {}, "", collector, strings)
    collector.raise_if_any()
    return result if result is not None else {}


def _member_path(parent: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{parent}.{camel}" if parent else camel


def _parse(shape: Shape, value: Any, path: str, errors: _Collector, strings: bool) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.add(value, path or shape.name, "Member must be a structure")
            return None
        result: dict[str, Any] = {}
        members = shape.members
        for name in shape.required_members:
            if value.get(name) is None:
                errors.add(None, _member_path(path, name), "Member must not be null")
        for name, member_value in value.items():
            member = members.get(name)
            if member is None or member_value is None:
                continue
            parsed = _parse(member, member_value, _member_path(path, name), errors, strings)
            if parsed is not None:
                result[name] = parsed
        return result
    if kind == "list":
        if not isinstance(value, list):
            errors.add(value, path, "Member must be a list")
            return None
        _check_length(shape, value, len(value), path, errors)
        numbers = _plain_numbers(shape.member, value)
        if numbers is not None:
            return numbers
        items = []
        for index, item in enumerate(value):
            parsed = _parse(shape.member, item, f"{path}.{index + 1}.member", errors, strings)
            if parsed is not None:
                items.append(parsed)
        return items
    if kind == "map":
        if not isinstance(value, dict):
            errors.add(value, path, "Member must be a map")
            return None
        _check_length(shape, value, len(value), path, errors)
        result = {}
        for key, item in value.items():
            parsed_key = _parse(shape.key, key, f"{path}.key", errors, strings)
            parsed = _parse(shape.value, item, f"{path}.{key}", errors, strings)
            if parsed_key is not None and parsed is not None:
                result[parsed_key] = parsed
        return result
    return _parse_scalar(shape, value, path, errors, strings)


def _plain_numbers(member: Shape, value: list[Any]) -> list[float] | None:
    """A list of plain finite numbers for an unbounded double member (PutMetricData's
    ``Values`` and ``Counts``: up to 150,000 a request), checked in one pass; None when
    any item needs the general path (and perhaps its error message)."""
    if member.type_name not in ("double", "float") or "min" in member.metadata \
            or "max" in member.metadata:
        return None
    if not all(type(item) is float or type(item) is int for item in value):
        return None
    try:
        numbers = [float(item) for item in value]
    except OverflowError:
        return None
    return numbers if all(map(math.isfinite, numbers)) else None


def _parse_scalar(shape: Shape, value: Any, path: str, errors: _Collector, strings: bool) -> Any:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            errors.add(value, path, "Member must be a string")
            return None
        _check_length(shape, value, len(value), path, errors)
        enum = shape.enum
        if enum and value not in enum:
            shown = ", ".join(enum[:_MAX_ENUM_SHOWN]) + (", ..." if len(enum) > _MAX_ENUM_SHOWN else "")
            errors.add(value, path, f"Member must satisfy enum value set: [{shown}]")
        pattern = shape.metadata.get("pattern")
        if pattern:
            compiled = _compile_pattern(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                hint = _PATTERN_HINTS.get(shape.name, "")
                errors.add(
                    value, path, f"Member must satisfy regular expression pattern: {pattern}{hint}"
                )
        return value
    if kind in ("integer", "long"):
        number = _coerce_number(value, int, strings)
        if number is None:
            errors.add(value, path, "Member must be an integer")
            return None
        low, high = _INTEGER_RANGES[kind]
        if not low <= number <= high:
            errors.add(value, path, f"Member must be an integer between {low} and {high}")
            return None
        _check_range(shape, number, path, errors)
        return number
    if kind in ("float", "double"):
        number = _coerce_number(value, float, strings)
        if number is None or not math.isfinite(number):
            errors.add(value, path, "Member must be a finite number")
            return None
        _check_range(shape, number, path, errors)
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if strings and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        errors.add(value, path, "Member must be a boolean")
        return None
    if kind == "timestamp":
        stamp = parse_timestamp(value)
        if stamp is None or not _EPOCH_RANGE[0] <= stamp <= _EPOCH_RANGE[1]:
            errors.add(value, path, "Member must be a timestamp (epoch seconds or ISO 8601) "
                       "between the years 1 and 9999")
            return None
        return stamp
    if kind == "blob":
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                errors.add(value, path, "Member must be base64-encoded binary data")
                return None
        errors.add(value, path, "Member must be binary data")
        return None
    return value


def _coerce_number(value: Any, kind: type, strings: bool) -> Any:
    if isinstance(value, bool):
        return None
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if strings and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                return None
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if strings and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_length(shape: Shape, value: Any, length: int, path: str, errors: _Collector) -> None:
    minimum = shape.metadata.get("min")
    maximum = shape.metadata.get("max")
    if minimum is not None and length < minimum:
        errors.add(value, path, f"Member must have length greater than or equal to {minimum}")
    if maximum is not None and length > maximum:
        errors.add(value, path, f"Member must have length less than or equal to {maximum}")


def _check_range(shape: Shape, number: float, path: str, errors: _Collector) -> None:
    minimum = shape.metadata.get("min")
    maximum = shape.metadata.get("max")
    if minimum is not None and number < minimum:
        errors.add(number, path, f"Member must have value greater than or equal to {minimum}")
    if maximum is not None and number > maximum:
        errors.add(number, path, f"Member must have value less than or equal to {maximum}")


@functools.lru_cache(maxsize=None)
def _compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a model pattern (Java syntax); approximate what Python's re lacks."""
    for candidate in (pattern, _translate_java_regex(pattern)):
        try:
            return re.compile(candidate, re.DOTALL | re.ASCII)  # Java: \w, \d, \s are ASCII
        except re.error:
            continue
    log.debug("pattern %r cannot be checked with Python's re; skipping it", pattern)
    return None


_CATEGORY = re.compile(r"\\p\{[A-Za-z]+\}")


def _any_category(pattern: str) -> str:
    """Java's \\p{Category} as "any character": \\w\\W inside [...], [\\w\\W] outside."""
    out, inside, index = [], False, 0
    while index < len(pattern):
        category = _CATEGORY.match(pattern, index)
        if category:
            out.append("\\w\\W" if inside else "[\\w\\W]")
            index = category.end()
            continue
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index:index + 2])
            index += 2
            continue
        inside = True if char == "[" else False if char == "]" else inside
        out.append(char)
        index += 1
    return "".join(out)


def _translate_java_regex(pattern: str) -> str:
    translated = _any_category(pattern)  # any Unicode category, e.g. \p{Print}+
    translated = translated.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF")
    translated = translated.replace("[\\w-_]", "[\\w\\-_]")
    return translated


def parse_timestamp(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return _aware(value).timestamp()
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
            return _aware(datetime.fromisoformat(value.replace("Z", "+00:00"))).timestamp()
    except (ValueError, OverflowError):  # not a date, or an integer too large for a float
        return None
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _abbreviate(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


# --- output ------------------------------------------------------------------------------


def shape_output(shape: Shape | None, value: Any, *, timestamps: str = "epoch") -> Any:
    """Keep only modelled members and convert values for a JSON wire format.

    ``timestamps`` is "epoch" (JSON protocols), "iso8601" (query, XML, REST headers) or
    "cbor" (RPC v2 CBOR: timestamps as datetimes, which CBOR tags 1, and blobs as raw bytes).
    """
    if shape is None or value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise TypeError(f"{shape.name} output must be a dict, got {type(value).__name__}")
        result = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                result[name] = shape_output(member, value[name], timestamps=timestamps)
        return result
    if kind == "list":
        return [shape_output(shape.member, item, timestamps=timestamps) for item in value]
    if kind == "map":
        return {
            key: shape_output(shape.value, item, timestamps=timestamps)
            for key, item in value.items()
        }
    if kind == "timestamp":
        epoch = parse_timestamp(value)
        if timestamps == "epoch":
            return epoch
        if timestamps == "cbor":
            return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)
        return format_iso8601(epoch)
    if kind == "blob":
        data = value.encode() if isinstance(value, str) else bytes(value)
        return data if timestamps == "cbor" else base64.b64encode(data).decode()
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return bool(value)
    return value


def format_iso8601(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
