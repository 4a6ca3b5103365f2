"""The data quality analysis: profile the dataset, suggest or check constraints.

Without baseline files (``baseline_statistics`` / ``baseline_constraints`` unset) this is
a baselining job: it writes ``statistics.json`` and ``constraints.json`` to
``output_path``. With them it is a monitoring run: it writes ``statistics.json`` and
``constraint_violations.json``, publishes CloudWatch metrics when asked, runs the
``post_analytics_processor_script`` and returns SageMaker's termination message,
``CompletedWithViolations: Job completed successfully with N violations.`` or
``Completed: Job completed successfully with no violations.``.

Columns without names of their own (CSV without header, captured CSV payloads) take the
baseline's feature names by position; columns beyond them keep ``_c<i>``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import pandas as pd

from . import statistics_json
from .constraints import constraints_document, load_json
from .formats import Dataset, DatasetError, read_dataset
from .statistics import ColumnProfile, profile_frame, statistics_document
from .violations import Comparison, compare

log = logging.getLogger("modelyard.monitor.analyzer")

DEFAULT_OUTPUT = "/opt/ml/processing/output"


class NoData(DatasetError):
    """The analysed window or dataset holds no records."""


def profile(frame: pd.DataFrame) -> tuple[list[ColumnProfile], dict]:
    """Profiles and the statistics.json document of a frame (also used by the benchmark)."""
    profiles = profile_frame(frame)
    return profiles, statistics_document(profiles, len(frame))


def run(env: dict[str, str]) -> str | None:
    """Run the analysis the environment describes; return the termination message."""
    started = time.perf_counter()
    output = Path(env.get("output_path") or DEFAULT_OUTPUT)
    output.mkdir(parents=True, exist_ok=True)
    baseline_statistics = load_json(env.get("baseline_statistics"), "baseline statistics")
    baseline_constraints = load_json(env.get("baseline_constraints"), "baseline constraints")
    monitoring = baseline_statistics is not None or baseline_constraints is not None

    dataset = read_dataset(env)
    skipped_note = _skipped_note(dataset)
    if dataset.frame.empty or len(dataset.frame) == 0:
        where = env.get("dataset_source") or "the dataset source"
        raise NoData(f"Job inputs had no data: no records to analyse in {where}"
                     + (f" between {env['start_time']} and {env['end_time']}"
                        if env.get("start_time") and env.get("end_time") else "")
                     + "." + skipped_note)
    frame = dataset.frame
    if dataset.positional:
        frame = _name_by_position(frame, baseline_constraints or baseline_statistics)
    profiles, statistics = profile(frame)
    statistics_json.write(output / "statistics.json", statistics)
    print(f"Profiled {len(frame)} records x {frame.shape[1]} features "
          f"in {time.perf_counter() - started:.2f}s.{skipped_note}", flush=True)

    if not monitoring:
        statistics_json.write(output / "constraints.json", constraints_document(
            profiles, env.get("categorical_drift_method")))
        _post_analytics(env)
        return "Completed: Job completed successfully with no violations." + skipped_note

    comparison = compare(profiles, baseline_statistics, baseline_constraints)
    statistics_json.write(output / "constraint_violations.json",
                          {"violations": comparison.violations})
    _publish(env, profiles, comparison)
    _post_analytics(env)
    count = len(comparison.violations)
    if count:
        return f"CompletedWithViolations: Job completed successfully with {count} violations." \
            + skipped_note
    return "Completed: Job completed successfully with no violations." + skipped_note


def _skipped_note(dataset: Dataset) -> str:
    if not dataset.skipped:
        return ""
    if dataset.notes:
        print(f"First skipped record: {dataset.notes[0]}", flush=True)
    return f" Skipped {dataset.skipped} malformed record(s)."


def _name_by_position(frame: pd.DataFrame, baseline: dict | None) -> pd.DataFrame:
    names = [str(f.get("name")) for f in (baseline or {}).get("features", [])]
    if not names:
        return frame
    renamed = [names[i] if i < len(names) else f"_c{i}" for i in range(frame.shape[1])]
    return frame.set_axis(renamed, axis=1)


def _publish(env: dict[str, str], profiles: list[ColumnProfile], comparison: Comparison) -> None:
    if (env.get("publish_cloudwatch_metrics") or "Disabled") != "Enabled" \
            or not comparison.emit_metrics:
        return
    from .publish import publish

    count = publish(env, profiles, comparison.drift)
    print(f"Published {count} CloudWatch metrics.", flush=True)


def _post_analytics(env: dict[str, str]) -> None:
    path = env.get("post_analytics_processor_script")
    if not path:
        return
    script = Path(path)
    if not script.is_file():
        raise DatasetError(f"post_analytics_processor_script {path} does not exist in the "
                           "container.")
    spec = importlib.util.spec_from_file_location("post_analytics_processor", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        handler = getattr(module, "postprocess_handler", None)
        if callable(handler):
            handler()
    except Exception as error:  # noqa: BLE001 - the user's script failed
        raise DatasetError(f"post_analytics_processor_script {script.name} raised "
                           f"{type(error).__name__}: {error}") from None
