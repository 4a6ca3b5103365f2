"""Model quality inputs: (ground truth, prediction, probability) columns from a dataset.

Attributes follow the container contract:

- ``csv`` with a header: column names; without one (or a name the header lacks): 0-based
  column indexes (``"0"``).
- ``json`` lines: a JSONPath-like path (``prediction``, ``$.prediction``,
  ``predictions[0].score``).
- ``sagemakerMergeJson`` (captured records joined with ground truth, see
  ``modelyard.monitor.merge``): ``inference_attribute`` / ``probability_attribute`` locate
  values inside the captured ``endpointOutput`` (or the indexes named by
  ``captureIndexNames``): a CSV index or a JSON path; the label is
  ``groundTruthData.data`` (its first CSV field, or ``ground_truth_attribute`` in it).
  Without ``inference_attribute`` and ``probability_attribute``, a classifier's output is
  read as a probability when it is numeric in [0, 1] and ``probability_threshold_attribute``
  is set, else as the predicted value.

Records whose values cannot be read are skipped and counted.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..merge import MergeResult

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class DatasetError(ValueError):
    """The dataset cannot be analysed; the message says what to fix."""


@dataclass
class Columns:
    """Parallel per-record values read from the dataset."""

    truth: list[str] = field(default_factory=list)
    prediction: list[str | None] = field(default_factory=list)
    probability: list[float | None] = field(default_factory=list)
    skipped: int = 0


@dataclass(frozen=True)
class Attributes:
    inference: str | None
    probability: str | None
    ground_truth: str | None
    threshold: float | None


def attributes_from_env(env: dict[str, str]) -> Attributes:
    threshold = env.get("probability_threshold_attribute")
    try:
        value = float(threshold) if threshold not in (None, "") else None
    except ValueError:
        raise DatasetError(f"probability_threshold_attribute {threshold!r} is not a number, "
                           "e.g. 0.5.") from None
    return Attributes(env.get("inference_attribute") or None,
                      env.get("probability_attribute") or None,
                      env.get("ground_truth_attribute") or None, value)


def json_path(value: Any, path: str) -> Any:
    """``$.a.b[0]`` / ``a.b[0]`` / ``0`` applied to a parsed JSON value."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    for name, index in _PATH_TOKEN.findall(text):
        if index:
            value = value[int(index)]
        elif isinstance(value, list) and name.isdigit():
            value = value[int(name)]
        else:
            value = value[name]
    return value


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _append(columns: Columns, truth: Any, prediction: Any, probability: Any) -> None:
    if truth is None or (isinstance(truth, str) and not truth.strip()):
        columns.skipped += 1
        return
    probability_value = _number(probability)
    if probability is not None and probability_value is None:
        columns.skipped += 1
        return
    columns.truth.append(str(truth).strip())
    columns.prediction.append(None if prediction is None else str(prediction).strip())
    columns.probability.append(probability_value)


def read_tabular(root: Path, dataset_format: dict[str, Any], attrs: Attributes) -> Columns:
    """Read a ``csv`` or ``json`` lines baseline dataset (every file under ``root``)."""
    if attrs.ground_truth is None:
        raise DatasetError("ground_truth_attribute is required for a csv or json dataset: "
                           "pass ground_truth_attribute to suggest_baseline.")
    if attrs.inference is None and attrs.probability is None:
        raise DatasetError("Pass inference_attribute or probability_attribute (with "
                           "probability_threshold_attribute) so predictions can be found.")
    columns = Columns()
    files = _files(root)
    if "csv" in dataset_format:
        header = bool((dataset_format.get("csv") or {}).get("header", False))
        for path in files:
            _read_csv(path, header, attrs, columns)
    elif "json" in dataset_format:
        for path in files:
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    values = [json_path(record, a) if a else None
                              for a in (attrs.ground_truth, attrs.inference, attrs.probability)]
                except (ValueError, KeyError, IndexError, TypeError):
                    columns.skipped += 1
                    continue
                _append(columns, *values)
    else:
        raise DatasetError(f"dataset_format {json.dumps(dataset_format)} is not supported for "
                           "model quality: use csv, json or sagemakerMergeJson.")
    return columns


def _column(name: str | None, header: list[str] | None) -> int | None:
    if name is None:
        return None
    if header is not None and name in header:
        return header.index(name)
    if name.strip().isdigit():
        return int(name)
    raise DatasetError(f"Attribute {name!r} is not a column of the dataset"
                       + (f" (columns: {', '.join(header)})" if header else
                          "; without a header, attributes are 0-based column indexes") + ".")


def _read_csv(path: Path, header: bool, attrs: Attributes, columns: Columns) -> None:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        names = None
        if header:
            names = [name.strip() for name in next(reader, [])]
        indexes = [_column(a, names) for a in (attrs.ground_truth, attrs.inference,
                                               attrs.probability)]
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                values = [row[i] if i is not None else None for i in indexes]
            except IndexError:
                columns.skipped += 1
                continue
            _append(columns, *values)


def _decode(payload: dict[str, Any]) -> Any:
    """A captured payload as a parsed JSON value or a list of CSV fields."""
    data = payload.get("data", "")
    if isinstance(data, (int, float, list, dict)) and not isinstance(data, bool):
        return data if isinstance(data, (list, dict)) else [str(data)]
    encoding = str(payload.get("encoding", "CSV")).upper()
    if encoding == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    content_type = str(payload.get("observedContentType", "")).lower()
    if encoding == "JSON" or "json" in content_type:
        return json.loads(data)
    first = next(csv.reader(io.StringIO(str(data).strip())), [])
    return [cell.strip() for cell in first]


def _pick(value: Any, attribute: str | None) -> Any:
    if attribute is None:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("several values and no attribute")
            return value[0]
        return value
    if isinstance(value, list) and attribute.strip().isdigit():
        return value[int(attribute)]
    return json_path(value, attribute)


def _label(label: Any, attribute: str | None) -> Any:
    """The label in ``groundTruthData``: its CSV field (the first unless ``attribute`` is an
    index and there are several) or, for JSON, the value at ``attribute``."""
    if isinstance(label, list):
        if attribute and attribute.strip().isdigit() and len(label) > 1:
            return label[int(attribute)]
        return label[0]
    if attribute and not isinstance(label, (str, int, float)):
        return json_path(label, attribute)
    if isinstance(label, (dict, list)):
        raise ValueError("structured label and no ground_truth_attribute")
    return label


def read_merged_records(records: list[dict[str, Any]], attrs: Attributes,
                        index_names: list[str] | None, classification: bool) -> Columns:
    """Columns from merged records (captured output + ``groundTruthData``)."""
    columns = Columns()
    names = index_names or ["endpointOutput"]
    for record in records:
        try:
            capture = record["captureData"]
            payload = next(capture[name] for name in names if name in capture)
            output = _decode(payload)
            label = _decode(record["groundTruthData"])
            truth = _label(label, attrs.ground_truth)
            prediction = _pick(output, attrs.inference) if attrs.inference else None
            probability = _pick(output, attrs.probability) if attrs.probability else None
            if prediction is None and probability is None:
                single = _pick(output, None)
                number = _number(single)
                if (classification and attrs.threshold is not None and number is not None
                        and 0.0 <= number <= 1.0):
                    probability = single
                else:
                    prediction = single
        except (KeyError, IndexError, ValueError, TypeError, StopIteration):
            columns.skipped += 1
            continue
        _append(columns, truth, prediction, probability)
    return columns


def read_merge_json(root: Path, attrs: Attributes, index_names: list[str] | None,
                    classification: bool) -> tuple[Columns, int]:
    """Columns from ``sagemakerMergeJson`` files; also the count of unparsable lines."""
    records: list[dict[str, Any]] = []
    bad_lines = 0
    for path in _files(root):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                bad_lines += 1
                continue
            if isinstance(value, dict):
                records.append(value)
            else:
                bad_lines += 1
    columns = read_merged_records(records, attrs, index_names, classification)
    columns.skipped += bad_lines
    return columns, bad_lines


def merged_columns(result: MergeResult, attrs: Attributes, index_names: list[str] | None,
                   classification: bool) -> Columns:
    return read_merged_records(result.records, attrs, index_names, classification)
