"""Pipeline parameters: their declarations, and the typed values an execution runs with.

StartPipelineExecution sends every value as a string; ``resolve_parameters`` converts
each to its declared type, checks EnumValues, fills defaults, and refuses unknown names.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.errors import validation_error

if TYPE_CHECKING:
    from .definition import PipelineDefinition

PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9\-_]{1,256}")  # botocore PipelineParameterName


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: str  # "String" | "Integer" | "Float" | "Boolean"
    default: Any | None  # already of the declared type
    enum_values: list | None



def parse_parameters(raw: Any) -> dict[str, ParameterSpec]:
    if not isinstance(raw, list):
        raise validation_error("PipelineDefinition Parameters must be a list.")
    parameters: dict[str, ParameterSpec] = {}
    for item in raw:
        name = item.get("Name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
            raise validation_error(
                f"Parameter {json.dumps(item)} needs a Name of letters, digits, - and _.")
        if name in parameters:
            raise validation_error(f"Parameter {name} is declared more than once.")
        kind = item.get("Type")
        if kind not in PARAMETER_TYPES:
            raise validation_error(f"Parameter {name} has Type {json.dumps(kind)}; "
                                   f"use one of {', '.join(PARAMETER_TYPES)}.")
        enum_values = item.get("EnumValues")
        if enum_values is not None:
            if not isinstance(enum_values, list) or not enum_values:
                raise validation_error(f"Parameter {name}: EnumValues must be a non-empty list.")
            enum_values = [_declared(name, kind, value, "EnumValues entry")
                           for value in enum_values]
        default = item.get("DefaultValue")
        if default is not None:
            default = _declared(name, kind, default, "DefaultValue")
            _check_enum(name, default, enum_values)
        parameters[name] = ParameterSpec(name, kind, default, enum_values)
    return parameters


def _declared(name: str, kind: str, value: Any, what: str) -> Any:
    try:
        return convert_value(value, kind)
    except ValueError:
        raise validation_error(
            f"Parameter {name}: {what} {json.dumps(value)} is not a valid {kind}.") from None


def convert_value(value: Any, kind: str) -> Any:
    """``value`` as a ``kind`` parameter value; ValueError when it is not one.

    Strings are parsed (the wire carries every value as a string); JSON values of the
    right type pass (definitions carry typed defaults)."""
    if kind == "String":
        if isinstance(value, str):
            return value
    elif isinstance(value, bool):
        if kind == "Boolean":
            return value
    elif kind == "Integer":
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
    elif kind == "Float":
        if isinstance(value, str) and "_" in value:
            raise ValueError(value)  # Python's float() reads "1_000"; SageMaker would not
        number = float(value) if isinstance(value, (int, float, str)) else math.nan
        if math.isfinite(number):  # float() itself raises ValueError on "abc"
            return number
    elif kind == "Boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(value)


def _check_enum(name: str, value: Any, enum_values: list | None) -> None:
    if enum_values is not None and value not in enum_values:
        raise validation_error(
            f"Value {json.dumps(value)} of parameter {name} is not one of its EnumValues: "
            f"{', '.join(json.dumps(item) for item in enum_values)}.")


def resolve_parameters(definition: "PipelineDefinition",
                       overrides: list[dict] | None) -> dict[str, Any]:
    """StartPipelineExecution's PipelineParameters, typed and completed with defaults."""
    declared = definition.parameters
    given: dict[str, Any] = {}
    for item in overrides or []:
        name, value = item.get("Name"), item.get("Value")
        if name not in declared:
            raise validation_error(f"Parameter {name} is not defined in the pipeline; "
                                   f"defined: {', '.join(declared) or 'none'}.")
        if name in given:
            raise validation_error(f"Parameter {name} is given more than once.")
        kind = declared[name].type
        try:
            given[name] = convert_value(value, kind)
        except ValueError:
            raise validation_error(f"Value {json.dumps(value)} for parameter {name} "
                                   f"is not a valid {kind}.") from None
        _check_enum(name, given[name], declared[name].enum_values)
    for name, spec in declared.items():
        if name not in given and spec.default is None:
            raise validation_error(f"Parameter {name} has no default value; "
                                   "give it a value in PipelineParameters.")
    return {name: given.get(name, spec.default) for name, spec in declared.items()}
