"""Model quality analysis: predictions vs ground truth, as SageMaker's analyzer computes it.

``run(env)`` is called by the analyzer entry point for ``analysis_type=MODEL_QUALITY`` (or a
``sagemakerMergeJson`` dataset). Environment (SageMaker's container contract):

- ``problem_type``: ``BinaryClassification``, ``MulticlassClassification`` or ``Regression``.
- ``dataset_source``: a directory (or file) of the dataset; ``dataset_format`` (JSON):
  ``{"csv": {"header": true}}`` / ``{"json": {"lines": true}}`` for a baseline of predictions
  and labels; ``{"sagemakerMergeJson": {"captureIndexNames": ["endpointOutput"]}}`` for
  captured records already merged with ground truth (``modelyard.monitor.merge``).
- ``ground_truth_source`` (what SageMaker's separate merge job gets; modelyard's analyzer
  merges itself when it is set): a directory of ground-truth JSON lines. ``dataset_source``
  then holds captured data (``sagemakerCaptureJson``) and the join is done in this job, so a
  monitoring execution is ONE processing job: inputs = the capture window (as for data
  quality) + the whole ``GroundTruthS3Input.S3Uri`` prefix (labels arrive later than
  predictions, in hours of their own) at e.g. /opt/ml/processing/groundtruth.
- ``inference_attribute``, ``probability_attribute``, ``probability_threshold_attribute``
  (default 0.5 when only probabilities are given), ``ground_truth_attribute``: where the
  values are (column names or indexes for csv, JSON paths for json, CSV indexes / JSON
  paths in the captured output); see model_quality_data.py. ``positive_label`` optional.
- ``output_path``: where statistics.json and, on a baseline run (no ``baseline_constraints``),
  constraints.json are written; with ``baseline_constraints`` (path to constraints.json or
  its directory) constraint_violations.json is written instead.
- ``start_time`` / ``end_time`` (ISO 8601): captured records outside [start, end) by their
  ``inferenceTime`` are left out of the merge. ``metric_time`` (else ``end_time``) stamps
  the CloudWatch metrics.
- ``publish_cloudwatch_metrics`` = ``Enabled``: metrics to CloudWatch
  (``aws/sagemaker/Endpoints/model-metrics``, dimensions ``Endpoint`` =
  ``sagemaker_endpoint_name`` and ``MonitoringSchedule`` = ``sagemaker_monitoring_schedule_name``).
- ``post_analytics_processor_script``: a script whose ``postprocess_handler()`` runs last.

Returns ``"CompletedWithViolations: Job completed successfully with N violations."`` when
constraints were violated, else None. Unusable input raises ``ModelQualityError`` (a
``ValueError``) whose message says what to fix; malformed records are skipped, counted and
reported on stdout (the job's log).
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..merge import merge_directories, parse_time
from .formats import DatasetError
from .model_quality_checks import check, load_constraints, publish, suggest_constraints
from .model_quality_data import (
    Attributes, Columns, attributes_from_env, merged_columns, read_merge_json, read_tabular,
)
from .model_quality_metrics import (
    PROBLEM_TYPES, binary_metrics, canonical_label, multiclass_metrics, positive_label,
    regression_metrics,
)

DEFAULT_THRESHOLD = 0.5


class ModelQualityError(DatasetError, ValueError):
    """The model quality job cannot run as configured; the message says what to fix (the
    analyzer entry point reports it as the job's ``ClientError: ...`` FailureReason)."""


def _dataset_format(env: dict[str, str]) -> dict[str, Any]:
    text = env.get("dataset_format") or ""
    if not text:
        return {"sagemakerCaptureJson": {}} if env.get("ground_truth_source") else {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ModelQualityError(f"dataset_format {text!r} is not JSON, e.g. "
                                '{"csv": {"header": true}}.') from None
    if not isinstance(value, dict):
        raise ModelQualityError(f"dataset_format {text!r} is not a JSON object.")
    return value


def _index_names(dataset_format: dict[str, Any]) -> list[str]:
    for key in ("sagemakerMergeJson", "sagemakerCaptureJson"):
        config = dataset_format.get(key)
        if isinstance(config, dict):
            names = [n for n in config.get("captureIndexNames") or [] if n != "endpointInput"]
            if names:
                return names
    return ["endpointOutput"]


def load_columns(env: dict[str, str], attrs: Attributes,
                 classification: bool) -> tuple[Columns, list[str]]:
    """The values to score and the log lines describing what was read."""
    source = env.get("dataset_source")
    if not source or not Path(source).exists():
        raise ModelQualityError(f"dataset_source {source!r} does not exist: the job needs its "
                                "dataset as a processing input.")
    dataset_format = _dataset_format(env)
    notes = []
    if env.get("ground_truth_source"):
        try:
            start, end = parse_time(env.get("start_time")), parse_time(env.get("end_time"))
        except ValueError as error:
            raise ModelQualityError(f"start_time / end_time must be ISO 8601: {error}") from None
        merged = merge_directories(Path(source), Path(env["ground_truth_source"]),
                                   start=start, end=end)
        notes.append(merged.summary())
        columns = merged_columns(merged, attrs, _index_names(dataset_format), classification)
        if not merged.records:
            raise ModelQualityError(
                "No captured prediction in the window has a ground-truth label: "
                + merged.summary() + ". Upload ground truth as {\"groundTruthData\": {\"data\": "
                "\"<label>\", \"encoding\": \"CSV\"}, \"eventMetadata\": {\"eventId\": "
                "\"<the capture's inferenceId or eventId>\"}, \"eventVersion\": \"0\"} lines "
                "under the GroundTruthS3Input prefix, in yyyy/mm/dd/hh folders.")
    elif "sagemakerMergeJson" in dataset_format:
        columns, bad = read_merge_json(Path(source), attrs, _index_names(dataset_format),
                                       classification)
        if bad:
            notes.append(f"skipped {bad} malformed merged lines")
    elif "sagemakerCaptureJson" in dataset_format:
        raise ModelQualityError(
            "Model quality needs ground truth: with sagemakerCaptureJson data pass "
            "ground_truth_source (a directory of ground-truth records), or merged data "
            "(sagemakerMergeJson).")
    else:
        try:
            columns = read_tabular(Path(source), dataset_format, attrs)
        except ValueError as error:
            raise ModelQualityError(str(error)) from None
    if columns.skipped:
        notes.append(f"skipped {columns.skipped} records whose label, prediction or "
                     "probability could not be read")
    return columns, notes


def _predicted_labels(columns: Columns, attrs: Attributes, binary: bool,
                      truth: list[str], positive: str | None) -> list[str]:
    """Predicted labels as read, or (binary) probabilities >= the threshold as the positive
    label and the rest as the other label of the ground truth (``1`` / ``0`` by default)."""
    if all(p is not None for p in columns.prediction):
        return [canonical_label(p) for p in columns.prediction]  # type: ignore[arg-type]
    if not binary or any(p is None for p in columns.probability):
        raise ModelQualityError(
            "Some records have no predicted label: set inference_attribute to where the "
            "prediction is" + (", or probability_attribute and probability_threshold_attribute"
                               if binary else "") + ".")
    threshold = DEFAULT_THRESHOLD if attrs.threshold is None else attrs.threshold
    labels = set(truth)
    pos = positive_label(labels | {"1"} if labels <= {"0", "1"} else labels, positive)
    others = sorted(labels - {pos})
    neg = others[0] if others else ("0" if pos != "0" else "1")
    return [pos if p >= threshold else neg for p in columns.probability]  # type: ignore[operator]


def compute(problem_type: str, columns: Columns, attrs: Attributes,
            positive: str | None = None) -> dict[str, Any]:
    """The ``<problem>_metrics`` object of statistics.json."""
    if problem_type == "Regression":
        truth, predicted, dropped = [], [], 0
        values = columns.prediction if all(p is not None for p in columns.prediction) \
            else columns.probability
        for t, p in zip(columns.truth, values):
            try:
                truth.append(float(t))
                predicted.append(float(p))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                dropped += 1
        if dropped:
            print(f"skipped {dropped} records whose label or prediction is not a number")
        if not truth:
            raise ModelQualityError("No record has a numeric label and prediction.")
        return regression_metrics(truth, predicted)
    binary = problem_type == "BinaryClassification"
    truth = [canonical_label(t) for t in columns.truth]
    predicted = _predicted_labels(columns, attrs, binary, truth, positive)
    if binary:
        probabilities = columns.probability if all(
            p is not None for p in columns.probability) else None
        return binary_metrics(truth, predicted, probabilities, positive)  # type: ignore[arg-type]
    return multiclass_metrics(truth, predicted)


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def _run_post_processor(script: str) -> None:
    spec = importlib.util.spec_from_file_location("postprocessor", script)
    if spec is None or spec.loader is None:
        raise ModelQualityError(f"post_analytics_processor_script {script!r} cannot be loaded.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, "postprocess_handler", None)
    if handler is None:
        raise ModelQualityError("The post_analytics_processor_script defines no "
                                "postprocess_handler().")
    handler()


def run(env: dict[str, str]) -> str | None:
    """Run a model-quality analysis; return the termination message or None."""
    problem_type = env.get("problem_type") or ""
    section = PROBLEM_TYPES.get(problem_type)
    if section is None:
        raise ModelQualityError(f"problem_type {problem_type!r} is not one of "
                                f"{', '.join(PROBLEM_TYPES)}.")
    try:
        attrs = attributes_from_env(env)
    except ValueError as error:
        raise ModelQualityError(str(error)) from None
    output = Path(env.get("output_path") or "/opt/ml/processing/output")
    output.mkdir(parents=True, exist_ok=True)
    # Check the baseline before the work, so a bad file fails fast with its own reason.
    constraints = None
    if env.get("baseline_constraints"):
        try:
            constraints = load_constraints(Path(env["baseline_constraints"]), section)
        except ValueError as error:
            raise ModelQualityError(str(error)) from None

    columns, notes = load_columns(env, attrs, section != "regression")
    for note in notes:
        print(note, flush=True)
    if not columns.truth:
        raise ModelQualityError("The dataset has no record with both a label and a prediction"
                                + (f" ({'; '.join(notes)})" if notes else "") + ".")
    try:
        metrics = compute(problem_type, columns, attrs, env.get("positive_label"))
    except ValueError as error:
        raise ModelQualityError(str(error)) from None
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": len(columns.truth),
                    "evaluation_time": datetime.now(timezone.utc).isoformat(
                        timespec="milliseconds").replace("+00:00", "Z")},
        f"{section}_metrics": metrics,
    }
    _write(output / "statistics.json", statistics)
    print(f"model quality ({problem_type}) over {len(columns.truth)} records written to "
          f"{output / 'statistics.json'}", flush=True)

    message = None
    if constraints is None:
        _write(output / "constraints.json", suggest_constraints(section, metrics))
    else:
        violations = check(metrics, constraints)
        _write(output / "constraint_violations.json", {"violations": violations})
        if violations:
            message = ("CompletedWithViolations: Job completed successfully with "
                       f"{len(violations)} violations.")

    if (env.get("publish_cloudwatch_metrics") or "").lower() == "enabled":
        when = parse_time(env.get("metric_time") or env.get("end_time")) or None
        count = publish(metrics, env.get("sagemaker_endpoint_name"),
                        env.get("sagemaker_monitoring_schedule_name"), when)
        print(f"published {count} model quality metrics to CloudWatch", flush=True)
    if env.get("post_analytics_processor_script"):
        _run_post_processor(env["post_analytics_processor_script"])
    return message
