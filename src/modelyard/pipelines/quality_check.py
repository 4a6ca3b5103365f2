"""The QualityCheck step: a Model Monitor baselining job that also checks drift.

The SDK's ``QualityCheckStep`` compiles to a processing job request (the model-monitor
analyzer image, ``dataset_format``, ``output_path``, ...) plus step-level settings:
``CheckType``, ``SkipCheck``, ``RegisterNewBaseline``, ``FailOnViolation``,
``ModelPackageGroupName`` and ``SuppliedBaselineStatistics`` / ``SuppliedBaselineConstraints``.
As SageMaker documents it (pipelines-quality-clarify-baseline-lifecycle):

* the job always calculates a new baseline: ``CalculatedBaselineStatistics`` /
  ``CalculatedBaselineConstraints`` are ``statistics.json`` / ``constraints.json`` under its
  output;
* the previous baseline is the supplied one when given (an empty string is "not given"),
  else the ``DriftCheckBaselines`` of the latest Approved version in
  ``ModelPackageGroupName``;
* unless ``SkipCheck``, the job compares the data with that previous baseline, which must
  exist; violations fail the step ("ClientError: Quality check failed. See violation
  report ...") unless ``FailOnViolation`` is false;
* ``BaselineUsedForDriftCheck*`` is the new baseline when ``RegisterNewBaseline``, else the
  previous one (which must then exist).
"""

from __future__ import annotations

import json
import logging
import posixpath
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..api.shapes import operation_model, parse_input
from ..engine import processing_job
from ..engine.channels import S3Location
from .expressions import resolve
from .steps import StepResult, _handlers, internal_context, job_name

if TYPE_CHECKING:
    from ..platform import Platform
    from .definition import StepSpec
    from .expressions import Scope

log = logging.getLogger("modelyard.pipelines")

DATA_QUALITY = "DATA_QUALITY"
MODEL_QUALITY = "MODEL_QUALITY"
OUTPUT_NAME = "quality_check_output"  # the SDK's _DEFAULT_OUTPUT_NAME
BASELINE_DIR = "/opt/ml/processing/baseline"  # where SageMaker's monitoring jobs read baselines
# The check type's member of DriftCheckBaselines in the model registry.
REGISTRY_MEMBER = {DATA_QUALITY: "ModelDataQuality", MODEL_QUALITY: "ModelQuality"}
VIOLATIONS_PREFIX = "CompletedWithViolations"
MAX_REASON = 1000


CHECK_SETTINGS = ("CheckType", "SkipCheck", "RegisterNewBaseline", "FailOnViolation",
                  "ModelPackageGroupName", "SuppliedBaselineStatistics",
                  "SuppliedBaselineConstraints")


def cache_basis(spec: "StepSpec") -> dict:
    """What a cached step must match: its arguments, and a check's step-level settings."""
    if spec.type != "QualityCheck":
        return spec.arguments
    return {**spec.arguments, "_check": {key: spec.raw.get(key) for key in CHECK_SETTINGS}}


def start(platform: "Platform", spec: "StepSpec", arguments: dict, scope: "Scope",
          execution_id: str) -> StepResult:
    """Work out the previous baseline, then start the check's processing job."""
    raw = spec.raw
    settings = {key: resolve(raw.get(key), scope) for key in (
        "SkipCheck", "RegisterNewBaseline", "FailOnViolation", "ModelPackageGroupName",
        "SuppliedBaselineStatistics", "SuppliedBaselineConstraints")}
    check_type = str(raw.get("CheckType") or DATA_QUALITY)
    skip_check = _flag(settings["SkipCheck"], False)
    register_new = _flag(settings["RegisterNewBaseline"], False)
    fail_on_violation = _flag(settings["FailOnViolation"], True)
    group = settings["ModelPackageGroupName"] or None
    try:
        statistics, constraints = _previous_baseline(platform, check_type, group, settings)
    except AwsError as error:
        return StepResult("Failed", failure_reason=f"{error.code}: {error.message}")
    metadata: dict[str, Any] = {"CheckType": check_type, "SkipCheck": skip_check,
                                "RegisterNewBaseline": register_new}
    if group:
        metadata["ModelPackageGroupName"] = group
    missing = _missing_baseline(spec.name, check_type, group, statistics, constraints,
                                skip_check, register_new)
    if missing:
        return StepResult("Failed", {"QualityCheck": metadata}, failure_reason=missing)
    if statistics:
        metadata["BaselineUsedForDriftCheckStatistics"] = statistics
    if constraints:
        metadata["BaselineUsedForDriftCheckConstraints"] = constraints
    request = dict(arguments)
    if not skip_check:
        request = _with_baseline_inputs(request, statistics, constraints)
    name = job_name(execution_id, spec.name)
    try:
        request = parse_input(operation_model("sagemaker", "CreateProcessingJob").input_shape,
                              {**request, "ProcessingJobName": name})
        response = _handlers()["CreateProcessingJob"](
            internal_context(platform, "CreateProcessingJob"), request)
    except AwsError as error:
        return StepResult("Failed", {"QualityCheck": metadata},
                          failure_reason=f"{error.code}: {error.message}")
    metadata["CheckJobArn"] = response["ProcessingJobArn"]
    output = _output_uri(request)
    if output:
        metadata["CalculatedBaselineStatistics"] = f"{output}/statistics.json"
        metadata["CalculatedBaselineConstraints"] = f"{output}/constraints.json"
    job = {"kind": processing_job.KIND, "name": name, "output": output or "",
           "fail_on_violation": fail_on_violation, "skip_check": skip_check}
    return StepResult("Executing", {"QualityCheck": metadata}, job=job)


def check(platform: "Platform", spec: "StepSpec", job: dict[str, Any],
          metadata: dict[str, Any]) -> StepResult:
    """How the check stands once its job moved; violations fail it as SageMaker does."""
    resource = platform.resources.get(processing_job.KIND, job["name"])
    if resource is None:
        return StepResult("Failed", metadata, failure_reason=f"The job {job['name']} disappeared.")
    document = resource.document
    status = document["ProcessingJobStatus"]
    if status in ("InProgress", "Stopping"):
        return StepResult("Executing", metadata, job=job)
    details = dict(metadata.get("QualityCheck", {}))
    if status != "Completed":
        reason = document.get("FailureReason") or f"ProcessingJob {job['name']} ended {status}"
        retryable = status == "Failed" and not reason.startswith("ClientError")
        return StepResult("Stopped" if status == "Stopped" else "Failed",
                          {"QualityCheck": details}, failure_reason=reason, job=job,
                          retryable=retryable)
    if job.get("output"):
        _calculate_constraints(platform, job["output"], str(details.get("CheckType")),
                               document.get("Environment") or {})
    if details.get("RegisterNewBaseline"):
        for kind in ("Statistics", "Constraints"):
            details[f"BaselineUsedForDriftCheck{kind}"] = details.get(f"CalculatedBaseline{kind}")
    properties = {key: details[key] for key in (
        "CalculatedBaselineStatistics", "CalculatedBaselineConstraints",
        "BaselineUsedForDriftCheckStatistics", "BaselineUsedForDriftCheckConstraints")
        if details.get(key)}
    violations = [] if job.get("skip_check") else _violations(platform, job, document)
    if violations is not None and violations:
        report = f"{job['output']}/constraint_violations.json"
        details["ViolationReport"] = report
        if job.get("fail_on_violation", True):
            reason = (f"ClientError: Quality check failed. See violation report at {report}. "
                      f"{len(violations)} violation(s): " + "; ".join(
                          f"{item.get('feature_name') or item.get('metric_name', '?')} "
                          f"{item.get('constraint_check_type', '?')}: "
                          f"{item.get('description', '')}" for item in violations))
            return StepResult("Failed", {"QualityCheck": details}, properties,
                              failure_reason=_shorten(reason), job=job)
    return StepResult("Succeeded", {"QualityCheck": details}, properties, job=job)


# --- the previous baseline -----------------------------------------------------------------


def _previous_baseline(platform: "Platform", check_type: str, group: str | None,
                       settings: dict[str, Any]) -> tuple[str | None, str | None]:
    """The supplied baseline, else the latest Approved version's DriftCheckBaselines."""
    statistics = settings["SuppliedBaselineStatistics"] or None
    constraints = settings["SuppliedBaselineConstraints"] or None
    if statistics or constraints or not group:
        return statistics, constraints
    from ..services import modelregistry

    ctx = internal_context(platform, "ListModelPackages")
    if modelregistry.lookup_group(ctx, group) is None:
        return None, None
    page = modelregistry.OPERATIONS["ListModelPackages"](ctx, {
        "ModelPackageGroupName": group, "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 1})
    summaries = page.get("ModelPackageSummaryList") or []
    if not summaries:
        return None, None
    package = modelregistry.find_package(ctx, summaries[0]["ModelPackageArn"]).document
    member = REGISTRY_MEMBER.get(check_type, "")
    baselines = (package.get("DriftCheckBaselines") or {}).get(member) or {}
    return (baselines.get("Statistics", {}).get("S3Uri"),
            baselines.get("Constraints", {}).get("S3Uri"))


def _missing_baseline(step: str, check_type: str, group: str | None, statistics: str | None,
                      constraints: str | None, skip_check: bool, register_new: bool) -> str | None:
    """Why the step cannot run without a previous baseline, or None when it can."""
    needed = []
    if not skip_check:
        needed.append("skip_check is False (the drift check needs it)")
    if not register_new:
        needed.append("register_new_baseline is False (BaselineUsedForDriftCheck* carries it over)")
    # A data-quality drift check compares distributions (statistics) and rules (constraints);
    # a model-quality check compares metrics with the constraints' thresholds.
    have = constraints and (statistics or check_type == MODEL_QUALITY)
    if not needed or have:
        return None
    where = (f"no Approved version of model package group {group} has "
             f"DriftCheckBaselines.{REGISTRY_MEMBER.get(check_type, check_type)}"
             if group else "no model_package_group_name is set")
    return (f"ClientError: QualityCheck step {step} needs a previous {check_type} baseline because "
            f"{' and '.join(needed)}, but none was supplied and {where}. Supply "
            "supplied_baseline_statistics and supplied_baseline_constraints, approve a model "
            "version registered with DriftCheckBaselines, or calculate the first baseline "
            "with skip_check=True and register_new_baseline=True.")


def _with_baseline_inputs(request: dict, statistics: str | None, constraints: str | None) -> dict:
    """The job request with the baseline files as inputs and in its environment, as
    SageMaker hands them to the analyzer (``baseline_statistics`` / ``baseline_constraints``)."""
    inputs = list(request.get("ProcessingInputs") or [])
    environment = dict(request.get("Environment") or {})
    for uri, name, folder, variable in ((statistics, "baseline_statistics", "stats",
                                         "baseline_statistics"),
                                        (constraints, "baseline_constraints", "constraints",
                                         "baseline_constraints")):
        if not uri:
            continue
        local = f"{BASELINE_DIR}/{folder}"
        inputs.append({"InputName": name, "AppManaged": False, "S3Input": {
            "S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
            "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}})
        environment[variable] = f"{local}/{posixpath.basename(S3Location.parse(uri).key)}"
    return {**request, "ProcessingInputs": inputs, "Environment": environment}


# --- results -------------------------------------------------------------------------------


def _output_uri(request: dict) -> str | None:
    outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    chosen = next((item for item in outputs if item.get("OutputName") == OUTPUT_NAME),
                  outputs[0] if outputs else None)
    uri = ((chosen or {}).get("S3Output") or {}).get("S3Uri")
    return uri.rstrip("/") if uri else None


def _violations(platform: "Platform", job: dict[str, Any], document: dict) -> list[dict] | None:
    """The job's violations: its constraint_violations.json when the analyzer ended
    CompletedWithViolations (or wrote a non-empty report); None when there are none."""
    flagged = str(document.get("ExitMessage") or "").startswith(VIOLATIONS_PREFIX)
    report: list[dict] = []
    if job.get("output"):
        location = S3Location.parse(f"{job['output']}/constraint_violations.json")
        try:
            reader = platform.objects.open_object(location.bucket, location.key)
            parsed = json.loads(b"".join(reader.iter_chunks()))
            report = [item for item in parsed.get("violations", []) if isinstance(item, dict)]
        except (AwsError, ValueError, AttributeError):
            report = []
    if report:
        return report
    if flagged:
        return [{"feature_name": "", "constraint_check_type": VIOLATIONS_PREFIX,
                 "description": str(document.get("ExitMessage"))}]
    return None


def _calculate_constraints(platform: "Platform", output: str, check_type: str,
                           environment: dict[str, str]) -> None:
    from .check_baseline import ensure_constraints

    try:
        ensure_constraints(platform, output, check_type, environment)
    except Exception:  # noqa: BLE001 - the check's outcome stands without the suggestion
        log.exception("suggesting constraints.json under %s failed", output)


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."
