"""Pipeline expressions as the SageMaker Python SDK emits them, and the Condition step's tests.

A pipeline definition carries values that are only known while an execution runs:

- ``{"Get": "Parameters.Epochs"}``, ``{"Get": "Execution.PipelineExecutionId"}``,
  ``{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}`` (a path into the finished
  step's Describe-like properties) and ``{"Get": "PipelineExperimentConfig.TrialName"}``;
- ``{"Std:Join": {"On": "/", "Values": [...]}}``;
- ``{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.E.PropertyFiles.F"}, "Path": "a.b[0]"}}``
  or ``{"Std:JsonGet": {"S3Uri": <expression>, "Path": ...}}`` (``@step`` function results).

``references`` reads them statically (for validation and the step graph); ``resolve``
computes them against a ``Scope`` at run time and raises ``ExpressionError`` - a message
for the step's FailureReason - when it cannot.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Protocol

PathKey = str | int

ROOTS = ("Parameters", "Execution", "Steps", "PipelineExperimentConfig")
# sagemaker.workflow.execution_variables.ExecutionVariables; the last two name the job of the
# step being resolved, so the engine sets them per step.
EXECUTION_VARIABLES = (
    "PipelineExecutionId", "PipelineExecutionArn", "StartDateTime", "CurrentDateTime",
    "PipelineName", "PipelineArn", "TrainingJobName", "ProcessingJobName",
)
EXPERIMENT_CONFIG_PROPERTIES = ("ExperimentName", "TrialName")
FUNCTIONS = ("Get", "Std:Join", "Std:JsonGet")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
CONDITION_TYPES = (*COMPARISONS, "In", "Not", "Or")
# Describe responses hold named things in lists (Outputs, FinalMetricDataList, ...);
# a string index such as Outputs['train'] selects the element carrying that name.
NAME_FIELDS = ("OutputName", "MetricName", "InputName", "ChannelName", "VariantName", "Name", "Key")


class ExpressionError(Exception):
    """An expression that cannot be read or computed; the message says which and why."""


class Scope(Protocol):
    """What an execution offers its expressions.

    Optional extras, looked up with ``getattr``: ``experiment_config`` (dict with the
    resolved ExperimentName / TrialName) and ``read_json(s3_uri) -> Any`` for the S3Uri
    form of Std:JsonGet.
    """

    parameters: dict[str, Any]
    execution: dict[str, Any]

    def step_properties(self, step_name: str) -> dict[str, Any]: ...

    def property_file(self, step_name: str, property_file_name: str) -> Any: ...


@dataclass(frozen=True)
class Reference:
    """One ``Get``: ``Steps.Train.ModelArtifacts.S3ModelArtifacts`` is root Steps, name
    Train, path ("ModelArtifacts", "S3ModelArtifacts")."""

    expression: str
    root: str
    name: str
    path: tuple[PathKey, ...] = ()
    property_file: bool = False  # the PropertyFile operand of a Std:JsonGet


# ---------------------------------------------------------------- static reading

_NAME = re.compile(r"[^.\[\]]+")
_BRACKET = re.compile(r"""\[(?:(\d+)|'([^']*)'|"([^"]*)")\]""")


def parse_path(text: str) -> tuple[PathKey, ...]:
    """``a.b['c'][0]`` -> ("a", "b", "c", 0)."""
    keys: list[PathKey] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "[":
            match = _BRACKET.match(text, pos)
            if match is None:
                raise ExpressionError(f"Malformed index at position {pos} of path {text!r}.")
            index, single, double = match.groups()
            if index is not None:
                keys.append(int(index))
            else:
                keys.append(single if single is not None else double)
        else:
            if pos > 0:  # every name after the first is introduced by a dot
                if text[pos] != ".":
                    raise ExpressionError(
                        f"Expected '.' or '[' at position {pos} of path {text!r}.")
                pos += 1
            match = _NAME.match(text, pos)
            if match is None:
                raise ExpressionError(f"Empty name at position {pos} of path {text!r}.")
            keys.append(match.group())
        pos = match.end()
    return tuple(keys)


def render_path(keys: tuple[PathKey, ...]) -> str:
    """The inverse of ``parse_path``, for messages."""
    text = ""
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-]+", key):
            text += f".{key}" if text else key
        else:
            text += f"['{key}']"
    return text


def parse_get(text: Any) -> Reference:
    if not isinstance(text, str):
        raise ExpressionError(f"A Get expression needs a string, not {json.dumps(text)}.")
    keys = parse_path(text)
    if len(keys) < 2 or keys[0] not in ROOTS or not isinstance(keys[1], str):
        raise ExpressionError(
            f"Get {text!r} must start with one of {', '.join(ROOTS)} followed by a name.")
    root, name, path = keys[0], keys[1], keys[2:]
    if root != "Steps" and path:
        raise ExpressionError(f"Get {text!r}: {root}.{name} has no properties to select.")
    if root == "Execution" and name not in EXECUTION_VARIABLES:
        raise ExpressionError(
            f"Get {text!r}: there is no execution variable {name}; "
            f"there are {', '.join(EXECUTION_VARIABLES)}.")
    if root == "PipelineExperimentConfig" and name not in EXPERIMENT_CONFIG_PROPERTIES:
        raise ExpressionError(
            f"Get {text!r}: PipelineExperimentConfig has only "
            f"{' and '.join(EXPERIMENT_CONFIG_PROPERTIES)}.")
    return Reference(text, root, name, path)


def _function_of(value: dict) -> str | None:
    """The function a dict spells, or None for plain data; unknown Std: names are errors."""
    if len(value) != 1:
        return None
    (key,) = value
    if key in FUNCTIONS:
        return key
    if isinstance(key, str) and key.startswith("Std:"):
        raise ExpressionError(
            f"Unknown function {key}; pipeline definitions may use Std:Join and Std:JsonGet.")
    return None


def _join_args(value: dict) -> dict:
    args = value["Std:Join"]
    if not isinstance(args, dict) or not isinstance(args.get("Values"), list):
        raise ExpressionError(f'Std:Join needs {{"On": ..., "Values": [...]}}, got {_show(args)}.')
    return args


def _json_get_args(value: dict) -> dict:
    args = value["Std:JsonGet"]
    if not isinstance(args, dict) or not isinstance(args.get("Path"), str):
        raise ExpressionError(f"Std:JsonGet needs a Path string, got {_show(args)}.")
    if ("PropertyFile" in args) == ("S3Uri" in args):
        raise ExpressionError(
            f"Std:JsonGet needs exactly one of PropertyFile and S3Uri, got {_show(args)}.")
    _json_path(args["Path"])  # a malformed path is a definition error, not a run-time one
    return args


def _property_file_ref(operand: Any) -> Reference:
    reference = parse_get(operand.get("Get") if isinstance(operand, dict) else operand)
    if reference.root != "Steps" or reference.path[:1] != ("PropertyFiles",) \
            or len(reference.path) != 2:
        raise ExpressionError(
            'Std:JsonGet PropertyFile must be {"Get": "Steps.<step>.PropertyFiles.<name>"}, '
            f"got {_show(operand)}.")
    return replace(reference, property_file=True)


def _json_path(text: str) -> tuple[PathKey, ...]:
    keys = parse_path(text)
    return keys[1:] if keys[:1] == ("$",) else keys  # JSONPath's optional "$." root


def references(value: Any) -> Iterator[Reference]:
    """Every Get in ``value``, in order; raises ExpressionError on a malformed expression."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        kind = _function_of(value)
        if kind == "Get":
            yield parse_get(value["Get"])
        elif kind == "Std:Join":
            args = _join_args(value)
            yield from references(args.get("On", ""))
            yield from references(args["Values"])
        elif kind == "Std:JsonGet":
            args = _json_get_args(value)
            if "PropertyFile" in args:
                yield _property_file_ref(args["PropertyFile"])
            else:
                yield from references(args["S3Uri"])
        else:
            for item in value.values():
                yield from references(item)


def referenced_steps(value: Any) -> set[str]:
    return {ref.name for ref in references(value) if ref.root == "Steps"}


def referenced_parameters(value: Any) -> set[str]:
    return {ref.name for ref in references(value) if ref.root == "Parameters"}


def validate_conditions(conditions: Any) -> None:
    """Check the shape of a Condition step's Conditions (sagemaker.workflow.conditions)."""
    if not isinstance(conditions, list):
        raise ExpressionError(f"Conditions must be a list, got {_show(conditions)}.")
    for condition in conditions:
        _validate_condition(condition)


def _validate_condition(condition: Any) -> None:
    kind = condition.get("Type") if isinstance(condition, dict) else None
    if kind in COMPARISONS:
        needed = ("LeftValue", "RightValue")
    elif kind == "In":
        needed = ("QueryValue", "Values")
    elif kind == "Not":
        needed = ("Condition",)
    elif kind == "Or":
        needed = ("Conditions",)
    else:
        raise ExpressionError(
            f"Condition {_show(condition)} has no Type among {', '.join(CONDITION_TYPES)}.")
    missing = [key for key in needed if key not in condition]
    if missing:
        raise ExpressionError(f"{kind} condition {_show(condition)} lacks {', '.join(missing)}.")
    if kind == "In" and not isinstance(condition["Values"], list):
        raise ExpressionError(f"In condition {_show(condition)}: Values must be a list.")
    if kind == "Not":
        _validate_condition(condition["Condition"])
    if kind == "Or":
        validate_conditions(condition["Conditions"])


# ---------------------------------------------------------------- run time

def resolve(value: Any, scope: Scope) -> Any:
    """A copy of ``value`` with every expression replaced by its value in ``scope``."""
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    if not isinstance(value, dict):
        return value
    kind = _function_of(value)
    if kind == "Get":
        return _plain(_get(parse_get(value["Get"]), scope))
    if kind == "Std:Join":
        return _join(value, scope)
    if kind == "Std:JsonGet":
        return _json_get(value, scope)
    return {key: resolve(item, scope) for key, item in value.items()}


def _get(reference: Reference, scope: Scope) -> Any:
    name, expression = reference.name, reference.expression
    if reference.root == "Parameters":
        if name not in scope.parameters:
            raise ExpressionError(f"Cannot resolve {expression}: parameter {name} has no value.")
        return scope.parameters[name]
    if reference.root == "Execution":
        if name not in scope.execution:
            raise ExpressionError(
                f"Cannot resolve {expression}: {name} is not known for this step.")
        return scope.execution[name]
    if reference.root == "PipelineExperimentConfig":
        config = getattr(scope, "experiment_config", None) or {}
        if name not in config:
            raise ExpressionError(
                f"Cannot resolve {expression}: the execution has no experiment {name}.")
        return config[name]
    if reference.path[:1] == ("PropertyFiles",):
        raise ExpressionError(
            f"Cannot resolve {expression}: a property file is read with Std:JsonGet, not Get.")
    return walk(scope.step_properties(name), reference.path,
                expression=expression, base=f"Steps.{name}", match_names=True)


def _join(value: dict, scope: Scope) -> str:
    args = _join_args(value)
    separator = to_text(resolve(args.get("On", ""), scope), value)
    return separator.join(to_text(resolve(item, scope), value) for item in args["Values"])


def _json_get(value: dict, scope: Scope) -> Any:
    args = _json_get_args(value)
    if "PropertyFile" in args:
        reference = _property_file_ref(args["PropertyFile"])
        file_name = reference.path[1]
        document = scope.property_file(reference.name, str(file_name))
        source = f"property file {file_name} of step {reference.name}"
    else:
        uri = to_text(resolve(args["S3Uri"], scope), value)
        reader = getattr(scope, "read_json", None)
        if reader is None:
            raise ExpressionError(f"Cannot read {uri}: this execution cannot read JSON from S3.")
        document, source = reader(uri), uri
    path = args["Path"]
    return _plain(walk(document, _json_path(path), expression=f"Std:JsonGet {path!r} in {source}",
                       base="", match_names=False))


_MISSING = object()


def walk(document: Any, path: tuple[PathKey, ...], *, expression: str, base: str,
         match_names: bool) -> Any:
    """Follow ``path`` through dicts and lists; ExpressionError names the first missing key.

    ``base`` names the document in messages ("Steps.Train"; "" for a JSON file)."""
    current = document
    for depth, key in enumerate(path):
        found = _step_into(current, key, match_names)
        if found is _MISSING:
            where = render_path(((base,) if base else ()) + path[:depth]) or "the document"
            missing = f"item [{key}]" if isinstance(key, int) else repr(key)
            raise ExpressionError(
                f"Cannot resolve {expression}: {where} has no {missing}{_available(current)}.")
        current = found
    return current


def _step_into(current: Any, key: PathKey, match_names: bool) -> Any:
    if isinstance(current, dict):
        if key in current:
            return current[key]
        return current.get(str(key), _MISSING) if isinstance(key, int) else _MISSING
    if isinstance(current, list):
        if isinstance(key, int):
            return current[key] if key < len(current) else _MISSING
        if match_names:
            for item in current:
                if isinstance(item, dict) and any(item.get(field) == key for field in NAME_FIELDS):
                    return item
    return _MISSING


def _available(current: Any) -> str:
    if isinstance(current, dict):
        names = [str(key) for key in current]
    elif isinstance(current, list):
        names = [next(str(item[field]) for field in NAME_FIELDS if field in item)
                 for item in current
                 if isinstance(item, dict) and any(field in item for field in NAME_FIELDS)]
        if not names:
            return f" (it is a list of {len(current)})"
    else:
        return f" (it is {_show(current)})"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f" (it has: {shown or 'nothing'})"


def iso_datetime(moment: datetime) -> str:
    """The form SageMaker gives datetimes in expressions: UTC, milliseconds, ``Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _plain(value: Any) -> Any:
    """Expressions yield JSON values; datetimes (StartDateTime, ...) become ISO strings."""
    return iso_datetime(value) if isinstance(value, datetime) else value


def to_text(value: Any, where: Any = None) -> str:
    """Std:Join's view of a value: strings as they are, everything else as JSON prints it
    (5 -> "5", 0.8 -> "0.8", True -> "true")."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return iso_datetime(value)
    if value is None:
        raise ExpressionError(f"Std:Join {_show(where)}: a value resolved to null.")
    return json.dumps(value, separators=(",", ":"), default=str)


def evaluate_conditions(conditions: list[dict], scope: Scope) -> bool:
    """True when every condition holds, as a Condition step decides its outcome."""
    validate_conditions(conditions)
    return all(_holds(condition, scope) for condition in conditions)


def _holds(condition: dict, scope: Scope) -> bool:
    kind = condition["Type"]
    if kind in COMPARISONS:
        left = resolve(condition["LeftValue"], scope)
        right = resolve(condition["RightValue"], scope)
        return _compare(kind, left, right)
    if kind == "In":
        query = resolve(condition["QueryValue"], scope)
        return any(_kind(query) == _kind(item) and query == item
                   for item in resolve(condition["Values"], scope))
    if kind == "Not":
        return not _holds(condition["Condition"], scope)
    return any(_holds(inner, scope) for inner in condition["Conditions"])


def _compare(kind: str, left: Any, right: Any) -> bool:
    # Numbers compare by value whatever their JSON spelling (1 vs 1.0); anything else only
    # with its own kind, so a string "0.9" never silently compares with a number.
    left_kind, right_kind = _kind(left), _kind(right)
    if left_kind != right_kind:
        raise ExpressionError(
            f"{kind} cannot compare {_show(left)} ({left_kind}) "
            f"with {_show(right)} ({right_kind}).")
    if kind != "Equals" and left_kind not in ("number", "string"):
        raise ExpressionError(
            f"{kind} compares numbers or strings, not {_show(left)} and {_show(right)}.")
    return COMPARISONS[kind](left, right)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "list" if isinstance(value, list) else "object"


def _show(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
