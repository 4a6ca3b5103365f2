"""The analyzer's JSON files as SageMaker's container writes them.

SageMaker's analyzer is a JVM program that prints its files with Jackson's default pretty
printer: two-space indentation of objects, ``"key" : value``, arrays inline as
``[ a, b ]`` (objects inside them open on the same line: ``[ {``), ``{ }`` / ``[ ]`` when
empty, and Java's ``Double.toString`` for doubles (``320.0``, ``1.2345678E7``,
``1.0E-4``), while counts that are longs print without a fraction. NaN and infinities are
written as strings (``"NaN"``), as Jackson does by default. Python ints are
longs, floats are doubles.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any


def java_double(value: float) -> str:
    """Java's ``Double.toString`` of ``value`` as a JSON token."""
    value = float(value)
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    digits_text = "".join(str(d) for d in digits).rstrip("0") or "0"
    # value = 0.d1d2... * 10^(exponent + len(digits)); Java prints d1.d2...E(n)
    power = int(exponent) + len(digits) - 1
    mantissa = digits_text[0] + "." + (digits_text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{power}"


def dumps(document: Any) -> str:
    """``document`` in Jackson's default pretty-printed layout."""
    parts: list[str] = []
    _write(document, 0, parts)
    return "".join(parts)


def write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(document), encoding="utf-8")


def _write(value: Any, depth: int, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{ }")
            return
        out.append("{")
        inner = "  " * (depth + 1)
        first = True
        for key, item in value.items():
            out.append("\n" + inner if first else ",\n" + inner)
            first = False
            out.append(json.dumps(str(key)) + " : ")
            _write(item, depth + 1, out)
        out.append("\n" + "  " * depth + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[ ]")
            return
        out.append("[ ")
        for index, item in enumerate(value):
            if index:
                out.append(", ")
            _write(item, depth, out)
        out.append(" ]")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(java_double(value))
    elif value is None:
        out.append("null")
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))
