"""Read a SageMaker pipeline definition (Version 2020-12-01) into checked, immutable specs.

``parse_definition`` refuses, with a ValidationException naming the step or parameter,
anything an execution would only trip over later: unknown or unsupported step types,
references to steps, parameters or property files that do not exist, property paths the
step's Describe response does not have, cycles, steps that wait on both branches of one
condition. ``resolve_parameters`` types StartPipelineExecution's string values.
Expressions themselves live in ``expressions``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..api.errors import AwsError, validation_error
from ..api.shapes import service_model
from .expressions import (
    ExpressionError, Reference, references, render_path, validate_conditions,
)
from .parameters import ParameterSpec, convert_value, parse_parameters, resolve_parameters

__all__ = ["ParameterSpec", "PipelineDefinition", "StepSpec", "convert_value",
           "parse_definition", "resolve_parameters"]

SUPPORTED_VERSION = "2020-12-01"
STEP_TYPES = frozenset({
    "Processing", "Training", "Transform", "Tuning", "Model", "CreateModel", "RegisterModel",
    "Condition", "Fail", "Callback", "QualityCheck", "ClarifyCheck", "EndpointConfig",
    "Endpoint", "InferenceComponent", "Lineage", "Lambda",
})
# Step types that need a service outside SageMaker: refused up front, with what to do instead.
REFUSED_STEP_TYPES = {
    "EMR": "modelyard has no Amazon EMR cluster; run the job in a Processing step",
    "AutoML": "modelyard does not run Autopilot (AutoML) jobs; search models with a Tuning step",
    "Notebook": "modelyard does not run notebook jobs; run the notebook's code in a "
                "Processing or Training step",
    **{kind: "modelyard has no Amazon Bedrock" for kind in (
        "BedrockCustomModel", "BedrockCustomModelDeployment", "BedrockModelImport",
        "BedrockProvisionedModelThroughput")},
}
RETRY_EXCEPTION_TYPES = (
    "Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.JOB_INTERNAL_ERROR",
    "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT",
)
# The botocore shapes the SDK builds each step's `properties` from (sagemaker.workflow).
PROPERTY_SHAPES = {
    "Training": ("DescribeTrainingJobResponse",),
    "Processing": ("DescribeProcessingJobResponse",),
    "Transform": ("DescribeTransformJobResponse",),
    "Tuning": ("DescribeHyperParameterTuningJobResponse",
               "ListTrainingJobsForHyperParameterTuningJobResponse"),
    "Model": ("DescribeModelOutput",), "CreateModel": ("DescribeModelOutput",),
    "RegisterModel": ("DescribeModelPackageOutput",),
    "EndpointConfig": ("DescribeEndpointConfigOutput",), "Endpoint": ("DescribeEndpointOutput",),
    "InferenceComponent": ("DescribeInferenceComponentOutput",),
}
# Step types whose SDK properties are a fixed list of names rather than a botocore shape.
FIXED_PROPERTIES = {
    "Condition": ("Outcome",),
    "Callback": ("OutputParameters",),
    "Lambda": ("OutputParameters",),
    "Fail": (),
    "QualityCheck": ("CalculatedBaselineConstraints", "CalculatedBaselineStatistics",
                     "BaselineUsedForDriftCheckStatistics", "BaselineUsedForDriftCheckConstraints"),
    "ClarifyCheck": ("CalculatedBaselineConstraints", "BaselineUsedForDriftCheckConstraints"),
}
_BRANCH = {"if": "IfSteps", "else": "ElseSteps"}
_STEP_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")  # botocore StepName
_LAMBDA_ARN = re.compile(r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:[a-zA-Z0-9_-]{1,64}"
                         r"(:(\$LATEST|[a-zA-Z0-9_-]+))?")
_DURATION = re.compile(
    r"P?(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(\d+(?:\.\d+)?S)?)?",
    re.IGNORECASE)


@dataclass(frozen=True)
class CacheSpec:
    enabled: bool
    expire_after: timedelta | None  # None: a cached result never expires


@dataclass(frozen=True)
class RetryPolicySpec:
    exception_types: tuple[str, ...]
    interval_seconds: float
    backoff_rate: float
    max_attempts: int | None
    expire_after_mins: int | None


@dataclass(frozen=True)
class PropertyFileSpec:
    name: str
    output_name: str
    file_path: str


@dataclass(frozen=True)
class StepSpec:
    name: str
    type: str
    # Unresolved, as in the definition; for a Condition step only {"Conditions": [...]} (the
    # SDK's step_only_arguments): its nested steps are StepSpecs of their own.
    arguments: dict
    depends_on: tuple[str, ...]
    upstream: frozenset[str]
    condition_branch: tuple[str, str] | None
    cache: CacheSpec | None
    retry_policies: tuple[RetryPolicySpec, ...]
    property_files: tuple[PropertyFileSpec, ...]
    raw: dict
    if_steps: tuple[str, ...] = ()  # Condition steps: the names directly in IfSteps
    else_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineDefinition:
    version: str
    parameters: dict[str, ParameterSpec]
    steps: dict[str, StepSpec]  # every step, nested ones right after their Condition
    top_level: tuple[str, ...]
    raw: dict
    order: tuple[str, ...] = ()  # every step after all of its upstream steps

    def ancestors(self, name: str) -> frozenset[str]:
        """Every step ``name`` waits for, directly or through others."""
        seen: set[str] = set()
        pending = list(self.steps[name].upstream)
        while pending:
            step = pending.pop()
            if step not in seen:
                seen.add(step)
                pending.extend(self.steps[step].upstream)
        return frozenset(seen)


def parse_definition(text: str) -> PipelineDefinition:
    document = _load(text)
    version = document.get("Version")
    if version != SUPPORTED_VERSION:
        raise validation_error(f"PipelineDefinition Version {json.dumps(version)} is not "
                               f"supported; modelyard reads Version {SUPPORTED_VERSION}.")
    parameters = parse_parameters(document.get("Parameters") or [])
    raw_steps = document.get("Steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise validation_error("PipelineDefinition must have a non-empty Steps list.")
    steps: dict[str, StepSpec] = {}
    refs: dict[str, list[Reference]] = {}
    top_level = tuple(_collect(raw, None, steps, refs) for raw in raw_steps)
    _check_experiment_config(document.get("PipelineExperimentConfig"), parameters)
    for name, step_refs in refs.items():
        for ref in step_refs:
            _check_reference(name, ref, steps, parameters)
    order = _topological_order(steps)
    _check_fail_dependencies(steps)
    _check_branches(steps, order)
    return PipelineDefinition(version, parameters, steps, top_level, document, order)


def _load(text: str) -> dict:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as error:
        raise validation_error(f"PipelineDefinition is not valid JSON: {error}.") from None
    if not isinstance(document, dict):
        raise validation_error("PipelineDefinition must be a JSON object.")
    return document


# ---------------------------------------------------------------- steps

def _step_error(step: str, message: str) -> AwsError:
    return validation_error(f"Step {step}: {message}")


def _collect(raw: Any, branch: tuple[str, str] | None, steps: dict[str, StepSpec],
             refs: dict[str, list[Reference]]) -> str:
    """Add the step ``raw`` (and a Condition's nested steps) to ``steps``; its Gets to ``refs``."""
    name = raw.get("Name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not _STEP_NAME.fullmatch(name):
        raise validation_error(
            f"Step {json.dumps(name)} needs a Name of 1-64 letters, digits, - and _.")
    if name in steps:
        raise validation_error(
            f"Step name {name} is used by more than one step; step names must be unique.")
    kind = raw.get("Type")
    if kind in REFUSED_STEP_TYPES:
        raise validation_error(f"Step {name} is a {kind} step; {REFUSED_STEP_TYPES[kind]}.")
    if kind not in STEP_TYPES:
        raise _step_error(name, f"Type {json.dumps(kind)} is not a step type modelyard knows; "
                                f"it runs {', '.join(sorted(STEP_TYPES))}.")
    arguments = raw.get("Arguments", {})
    if not isinstance(arguments, dict):
        raise _step_error(name, "Arguments must be a JSON object.")
    if kind == "Lambda" and not _LAMBDA_ARN.fullmatch(str(raw.get("FunctionArn"))):
        raise _step_error(name, f"FunctionArn {json.dumps(raw.get('FunctionArn'))} is not a Lambda "
                                "function ARN (arn:aws:lambda:<region>:<account>:function:<name>).")
    depends_on = raw.get("DependsOn") or []
    if not isinstance(depends_on, list) or not all(isinstance(item, str) for item in depends_on):
        raise _step_error(name, "DependsOn must be a list of step names.")
    nested: dict[str, list] = {"if": [], "else": []}
    if kind == "Condition":
        arguments, nested = _split_condition(name, arguments)
    try:  # a Condition's nested steps are not part of it: their references are their own
        refs[name] = list(references({**raw, "Arguments": arguments}))
    except ExpressionError as error:
        raise _step_error(name, str(error)) from None
    upstream = set(depends_on) | {ref.name for ref in refs[name] if ref.root == "Steps"}
    # Hold this step's place so that a Condition comes before its nested steps.
    steps[name] = None  # type: ignore[assignment]
    steps[name] = StepSpec(
        name=name, type=kind, arguments=arguments, depends_on=tuple(depends_on),
        upstream=frozenset(upstream | ({branch[0]} if branch else set())),
        condition_branch=branch,
        cache=_parse_cache(name, raw.get("CacheConfig")),
        retry_policies=_parse_retry_policies(name, raw.get("RetryPolicies")),
        property_files=_parse_property_files(name, kind, raw),
        raw=raw,
        if_steps=tuple(_collect(item, (name, "if"), steps, refs) for item in nested["if"]),
        else_steps=tuple(_collect(item, (name, "else"), steps, refs) for item in nested["else"]),
    )
    return name


def _split_condition(name: str, arguments: dict) -> tuple[dict, dict[str, list]]:
    """A Condition's own arguments (the SDK's step_only_arguments) and its nested steps."""
    nested = {"if": arguments.get("IfSteps") or [], "else": arguments.get("ElseSteps") or []}
    if not all(isinstance(steps, list) for steps in nested.values()):
        raise _step_error(name, "IfSteps and ElseSteps must be lists of steps.")
    own = {"Conditions": arguments.get("Conditions", [])}
    try:
        validate_conditions(own["Conditions"])
    except ExpressionError as error:
        raise _step_error(name, str(error)) from None
    return own, nested


def parse_duration(text: str) -> timedelta:
    """ISO-8601 duration as SageMaker reads CacheConfig.ExpireAfter (P30D, PT1H, T12H):
    a month counts 30 days and a year 365."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ValueError(text)
    years, months, weeks, days, hours, minutes, seconds = (g or "0" for g in match.groups())
    return timedelta(days=365 * int(years) + 30 * int(months) + 7 * int(weeks) + int(days),
                     hours=int(hours), minutes=int(minutes), seconds=float(seconds.rstrip("sS")))


def _parse_cache(step: str, raw: Any) -> CacheSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("Enabled", False), bool):
        raise _step_error(step, 'CacheConfig must be {"Enabled": true, "ExpireAfter": "P30D"}.')
    expire_after = raw.get("ExpireAfter")
    if expire_after is not None:
        try:
            expire_after = parse_duration(expire_after)
        except ValueError:
            raise _step_error(step, f"CacheConfig ExpireAfter {json.dumps(expire_after)} is not "
                                    "an ISO-8601 duration such as P30D or PT12H.") from None
    return CacheSpec(raw.get("Enabled", False), expire_after)


def _parse_retry_policies(step: str, raw: Any) -> tuple[RetryPolicySpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _step_error(step, "RetryPolicies must be a list.")
    return tuple(_parse_retry_policy(f"Step {step}: RetryPolicies[{index}]", policy)
                 for index, policy in enumerate(raw))


def _parse_retry_policy(where: str, policy: Any) -> RetryPolicySpec:
    """Limits as sagemaker.workflow.retry checks them."""
    if not isinstance(policy, dict):
        raise validation_error(f"{where} must be an object.")
    types = policy.get("ExceptionType")
    if not isinstance(types, list) or not types or not set(types) <= set(RETRY_EXCEPTION_TYPES):
        raise validation_error(
            f"{where}: ExceptionType must list some of {', '.join(RETRY_EXCEPTION_TYPES)}.")
    interval, backoff = policy.get("IntervalSeconds", 1), policy.get("BackoffRate", 2.0)
    max_attempts, expire = policy.get("MaxAttempts"), policy.get("ExpireAfterMin")
    if not _number_in(interval, 0, math.inf) or not _number_in(backoff, 0, math.inf):
        raise validation_error(
            f"{where}: IntervalSeconds and BackoffRate must be non-negative numbers.")
    if max_attempts is None and expire is None:
        raise validation_error(f"{where} needs MaxAttempts or ExpireAfterMin.")
    if max_attempts is not None and not _number_in(max_attempts, 1, 20, integer=True):
        raise validation_error(f"{where}: MaxAttempts must be an integer from 1 to 20.")
    if expire is not None and not _number_in(expire, 0, 14400, integer=True):
        raise validation_error(f"{where}: ExpireAfterMin must be an integer from 0 to 14400.")
    return RetryPolicySpec(tuple(types), float(interval), float(backoff), max_attempts, expire)


def _number_in(value: Any, low: float, high: float, integer: bool = False) -> bool:
    kinds = int if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and low <= value <= high


def _parse_property_files(step: str, kind: str, raw: dict) -> tuple[PropertyFileSpec, ...]:
    items = raw.get("PropertyFiles")
    if items is None:
        return ()
    if kind != "Processing":
        raise _step_error(step, "only Processing steps have PropertyFiles.")
    if not isinstance(items, list):
        raise _step_error(step, "PropertyFiles must be a list.")
    output_names = _processing_output_names(raw.get("Arguments", {}))
    fields = ("PropertyFileName", "OutputName", "FilePath")
    files: dict[str, PropertyFileSpec] = {}
    for item in items:
        values = [item.get(key) for key in fields] if isinstance(item, dict) else []
        if len(values) != 3 or not all(isinstance(value, str) and value for value in values):
            raise _step_error(
                step, f"property file {json.dumps(item)} needs {', '.join(fields)} strings.")
        spec = PropertyFileSpec(*values)
        if spec.name in files:
            raise _step_error(step, f"property file {spec.name} is declared more than once.")
        if spec.output_name not in output_names:
            raise _step_error(step, f"property file {spec.name} names output {spec.output_name}, "
                                    f"but the outputs are: {', '.join(output_names) or 'none'}.")
        files[spec.name] = spec
    return tuple(files.values())


def _processing_output_names(arguments: dict) -> list[str]:
    config = arguments.get("ProcessingOutputConfig")
    outputs = config.get("Outputs") if isinstance(config, dict) else None
    return [str(output.get("OutputName")) for output in outputs or [] if isinstance(output, dict)]


# ---------------------------------------------------------------- cross-step checks

def _check_reference(step: str, ref: Reference, steps: dict[str, StepSpec],
                     parameters: dict[str, ParameterSpec]) -> None:
    if ref.root == "Parameters" and ref.name not in parameters:
        raise _step_error(step, f"{ref.expression} refers to parameter {ref.name}, which the "
                                f"pipeline does not declare; declared: "
                                f"{', '.join(parameters) or 'none'}.")
    if ref.root != "Steps":
        return
    target = steps.get(ref.name)
    if target is None:
        raise _step_error(step, f"{ref.expression} refers to step {ref.name}, "
                                "which the pipeline does not have.")
    if target.type == "Fail":
        raise _fail_dependency_error(step, target.name, f"it reads {ref.expression}")
    if ref.property_file or ref.path[:1] == ("PropertyFiles",):
        _check_property_file(step, ref, target)
    else:
        _check_property_path(step, ref, target)


def _check_property_file(step: str, ref: Reference, target: StepSpec) -> None:
    if not ref.property_file:
        raise _step_error(step, f"{ref.expression}: read a property file with Std:JsonGet.")
    declared = [item.name for item in target.property_files]
    if len(ref.path) != 2 or ref.path[1] not in declared:
        raise _step_error(step, f"{ref.expression}: step {target.name} has no property file "
                                f"{render_path(ref.path[1:])}; it declares: "
                                f"{', '.join(declared) or 'none'}.")


def _check_property_path(step: str, ref: Reference, target: StepSpec) -> None:
    """The SDK can only spell paths its property models have; catch hand-written typos."""
    if not ref.path:
        return
    if target.type in FIXED_PROPERTIES:
        _check_fixed_property(step, ref, target)
        return
    model = service_model("sagemaker")
    shapes = [model.shape_for(name) for name in PROPERTY_SHAPES.get(target.type, ())]
    if not shapes:
        return  # a step type whose properties the SDK does not model
    first = ref.path[0]
    shape = next((each.members[first] for each in shapes if first in each.members), None)
    if shape is None:
        raise _step_error(step, f"{ref.expression}: a {target.type} step's properties "
                                f"({', '.join(PROPERTY_SHAPES[target.type])}) have no {first}.")
    for depth, key in enumerate(ref.path[1:], start=1):
        if shape.type_name == "structure":
            shape = shape.members.get(key) if isinstance(key, str) else None
        elif shape.type_name == "list":
            shape = shape.member  # by position, or by the name of an element
        elif shape.type_name == "map":
            shape = shape.value if isinstance(key, str) else None
        else:
            shape = None
        if shape is None:
            raise _step_error(step, f"{ref.expression}: {render_path(ref.path[:depth])} of a "
                                    f"{target.type} step has no {render_path((key,))!r}.")


def _check_fixed_property(step: str, ref: Reference, target: StepSpec) -> None:
    known = FIXED_PROPERTIES[target.type]
    if ref.path[0] not in known:
        raise _step_error(step, f"{ref.expression}: a {target.type} step has "
                                f"{'only ' + ', '.join(known) if known else 'no properties'}.")
    if target.type in ("Callback", "Lambda") and len(ref.path) > 1:
        outputs = [str(item.get("OutputName")) for item in target.raw.get("OutputParameters") or []
                   if isinstance(item, dict)]
        if ref.path[1] not in outputs:
            raise _step_error(step, f"{ref.expression}: {target.type.lower()} step {target.name} declares "
                                    f"OutputParameters {', '.join(outputs) or 'none'}.")


def _check_experiment_config(config: Any, parameters: dict[str, ParameterSpec]) -> None:
    if config is None:
        return
    try:
        refs = list(references(config))
    except ExpressionError as error:
        raise validation_error(f"PipelineExperimentConfig: {error}") from None
    for ref in refs:
        if ref.root in ("Steps", "PipelineExperimentConfig"):
            raise validation_error(f"PipelineExperimentConfig cannot use {ref.expression}; "
                                   "it may use parameters and execution variables.")
        if ref.root == "Parameters" and ref.name not in parameters:
            raise validation_error(f"PipelineExperimentConfig refers to parameter {ref.name}, "
                                   "which the pipeline does not declare.")


def _topological_order(steps: dict[str, StepSpec]) -> tuple[str, ...]:
    """Steps in definition order, each after its upstream; a ValidationException names a cycle."""
    for spec in steps.values():
        for name in spec.depends_on:
            if name not in steps:
                raise _step_error(spec.name, f"DependsOn names step {name}, "
                                             "which the pipeline does not have.")
    placed: dict[str, None] = {}  # insertion-ordered set
    progress = True
    while progress:
        progress = False
        for spec in steps.values():
            if spec.name not in placed and spec.upstream <= placed.keys():
                placed[spec.name] = None
                progress = True
    if len(placed) < len(steps):
        raise validation_error(f"Steps {_cycle(steps, set(placed))} form a cycle: "
                               "each waits for the next.")
    return tuple(placed)


def _cycle(steps: dict[str, StepSpec], placed: set[str]) -> str:
    # Every unplaced step waits for some other unplaced step, so walking upstream among
    # them must come back to a step already on the walk.
    walk = [next(name for name in steps if name not in placed)]
    while walk.count(walk[-1]) < 2:
        walk.append(sorted(steps[walk[-1]].upstream - placed)[0])
    return " -> ".join(walk[walk.index(walk[-1]):])


def _check_fail_dependencies(steps: dict[str, StepSpec]) -> None:
    """Refuse a step that waits for a Fail step: a Fail step ends the execution."""
    for spec in steps.values():
        for name in spec.depends_on:
            if steps[name].type == "Fail":
                raise _fail_dependency_error(spec.name, name, "its DependsOn names it")


def _fail_dependency_error(step: str, fail_step: str, how: str) -> AwsError:
    # "<step> can not depends on <Fail step>" is SageMaker's own wording for this refusal.
    return validation_error(
        f"Invalid pipeline definition: {step} can not depends on {fail_step} ({how}). "
        f"{fail_step} is a Fail step: it ends the execution, so no step can wait for it. "
        f"Remove {step}'s dependency on {fail_step}.")


def _check_branches(steps: dict[str, StepSpec], order: tuple[str, ...]) -> None:
    """Refuse a step that waits for steps on both branches of one condition: it never runs."""
    # For each step: condition -> (branch it needs, the step that brings that need).
    needs: dict[str, dict[str, tuple[str, str]]] = {}
    for name in order:
        spec = steps[name]
        merged: dict[str, tuple[str, str]] = {}
        if spec.condition_branch is not None:
            merged[spec.condition_branch[0]] = (spec.condition_branch[1], name)
        for upstream in sorted(spec.upstream):
            for condition, (branch, via) in needs[upstream].items():
                have = merged.setdefault(condition, (branch, via))
                if have[0] != branch:
                    raise validation_error(
                        f"Step {name} can never run: it waits for {have[1]}, which runs only "
                        f"in the {_BRANCH[have[0]]} of condition {condition}, and for {via}, "
                        f"which runs only in its {_BRANCH[branch]}.")
        needs[name] = merged
