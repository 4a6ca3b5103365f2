"""Ground truth + captured predictions -> merged records, as SageMaker's merge job makes them.

Model quality monitoring joins what an endpoint predicted with labels the user uploads later.
Ground truth is uploaded as JSON lines under the schedule's ``GroundTruthS3Input.S3Uri``,
in the same ``yyyy/mm/dd/hh`` layout as captured data (the hour being when the labels were
collected, not when the inference ran)::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the capture's inferenceId, else its eventId>"},
     "eventVersion": "0"}

A captured record is matched by its ``eventMetadata.inferenceId`` when it has one, else by
its ``eventId`` (SageMaker's rule); a ground-truth line may name the id as ``eventId`` or
``inferenceId``. The merged record is the captured record (``captureData`` with
``endpointInput`` / ``endpointOutput``, ``eventMetadata``, ``eventVersion``) plus the
ground truth's ``groundTruthData``: the ``sagemakerMergeJson`` dataset format the analyzer
reads. When several labels share an id the last one read wins (files in path order).

Malformed lines (not JSON, no data, no id) are skipped and counted, never fatal.

Run standalone as SageMaker's ``sagemaker-model-monitor-groundtruth-merger`` container
(``python -m modelyard.monitor.merge``) with the environment that container gets:
``dataset_source`` (captured data directory), ``ground_truth_source`` (ground truth
directory), ``output_path`` (where merged files go, keeping each capture file's relative
path), and optionally ``start_time`` / ``end_time`` (ISO 8601: only captured records whose
``inferenceTime`` falls in [start, end) are kept). The model-quality analyzer calls
:func:`merge_directories` itself when its environment has ``ground_truth_source``, so one
processing job does both steps.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator


@dataclass
class MergeResult:
    """The merged records and the counts a user needs to trust them."""

    records: list[dict[str, Any]] = field(default_factory=list)
    # relative directory of the capture file each merged record came from (parallel list)
    sources: list[str] = field(default_factory=list)
    captured: int = 0  # well-formed captured records in the window
    outside_window: int = 0  # captured records dropped by start_time / end_time
    ground_truth: int = 0  # well-formed ground-truth records
    skipped_capture_lines: int = 0
    skipped_ground_truth_lines: int = 0
    unmatched: int = 0  # captured records without a label

    def summary(self) -> str:
        return (f"merged {len(self.records)} captured predictions with ground truth "
                f"({self.captured} captured records in the window, {self.ground_truth} "
                f"ground-truth records, {self.unmatched} captured records without a label, "
                f"{self.outside_window} outside the window; skipped "
                f"{self.skipped_capture_lines} malformed capture lines and "
                f"{self.skipped_ground_truth_lines} malformed ground-truth lines)")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*")
                  if path.is_file() and not path.name.startswith("."))


def _json_lines(path: Path) -> Iterator[tuple[dict[str, Any] | None, str]]:
    """Each non-blank line as (object or None when malformed, raw line)."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                yield None, text
                continue
            yield (value if isinstance(value, dict) else None), text


def record_key(record: dict[str, Any]) -> str | None:
    """The id a captured record is merged on: inferenceId if present, else eventId."""
    metadata = record.get("eventMetadata")
    if not isinstance(metadata, dict):
        return None
    key = metadata.get("inferenceId") or metadata.get("eventId")
    return str(key) if key not in (None, "") else None


def read_ground_truth(root: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """{id: groundTruthData} from every file under ``root`` and the malformed-line count."""
    labels: dict[str, dict[str, Any]] = {}
    skipped = 0
    for path in _files(root):
        for value, _ in _json_lines(path):
            data = value.get("groundTruthData") if value else None
            key = record_key(value) if value else None
            if not isinstance(data, dict) or "data" not in data or key is None:
                skipped += 1
                continue
            labels[key] = data
    return labels, skipped


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time (``2026-12-01T08:00:00Z``, with or without fractions) in UTC."""
    if not text:
        return None
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _in_window(record: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    try:
        when = parse_time(record["eventMetadata"].get("inferenceTime"))
    except (KeyError, AttributeError, ValueError):
        return True  # no usable time: keep it, the input already is the window
    if when is None:
        return True
    return (start is None or when >= start) and (end is None or when < end)


def merge_directories(capture_root: Path, ground_truth_root: Path, *,
                      start: datetime | None = None,
                      end: datetime | None = None) -> MergeResult:
    """Join every captured record under ``capture_root`` with its ground truth."""
    labels, skipped_labels = read_ground_truth(ground_truth_root)
    result = MergeResult(ground_truth=len(labels), skipped_ground_truth_lines=skipped_labels)
    for path in _files(capture_root):
        relative = str(path.parent.relative_to(capture_root)) if capture_root.is_dir() else "."
        for value, _ in _json_lines(path):
            key = record_key(value) if value else None
            if value is None or key is None or not isinstance(value.get("captureData"), dict):
                result.skipped_capture_lines += 1
                continue
            if (value.get("eventMetadata") or {}).get("invocationSource") == "ShadowExperiment":
                continue  # SageMaker's preprocessing drops shadow-variant traffic too
            if not _in_window(value, start, end):
                result.outside_window += 1
                continue
            result.captured += 1
            label = labels.get(key)
            if label is None:
                result.unmatched += 1
                continue
            merged = dict(value)
            merged["groundTruthData"] = label
            result.records.append(merged)
            result.sources.append(relative)
    return result


def write_merged(result: MergeResult, output_root: Path) -> list[Path]:
    """Write the merged records as JSON lines, one file per capture directory."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record, source in zip(result.records, result.sources):
        groups.setdefault(source, []).append(record)
    written = []
    for source, records in sorted(groups.items()):
        directory = output_root / source
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "merged.jsonl"
        path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records),
                        encoding="utf-8")
        written.append(path)
    return written


def main(env: dict[str, str] | None = None) -> int:
    """The merge container: environment in, merged files out; exit code 0 unless misused."""
    env = dict(os.environ if env is None else env)
    missing = [name for name in ("dataset_source", "ground_truth_source", "output_path")
               if not env.get(name)]
    if missing:
        print(f"The ground-truth merge needs the environment variables {', '.join(missing)}.",
              file=sys.stderr)
        return 2
    result = merge_directories(Path(env["dataset_source"]), Path(env["ground_truth_source"]),
                               start=parse_time(env.get("start_time")),
                               end=parse_time(env.get("end_time")))
    write_merged(result, Path(env["output_path"]))
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
