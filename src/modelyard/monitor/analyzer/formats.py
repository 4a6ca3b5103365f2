"""Reading the analyzer's dataset: ``dataset_format`` x ``dataset_source`` -> one table.

Formats (the JSON in the ``dataset_format`` variable, as the SDK's ``DatasetFormat`` and
SageMaker's schedules write it):

- ``{"csv": {"header": true, "output_columns_position": "START"}}``: every file under the
  source is CSV; with a header its names are the feature names, else ``_c0``, ``_c1``, ...
- ``{"json": {"lines": true}}``: JSON objects one a line (``lines: false``: each file is one
  object or an array of them); nested members are flattened as ``a.b`` / ``a.0``.
- ``{"parquet": {}}``: parquet files (needs pyarrow in the environment).
- ``{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}``:
  data capture files. Each record's ``endpointOutput`` values come first, then the
  ``endpointInput`` values (SageMaker's column order), CSV split on commas, JSON flattened;
  records outside ``start_time`` / ``end_time`` are left out. A ``record_preprocessor_script``
  defining ``preprocess_handler(inference_record[, logger])`` turns each record into a dict
  of features (or a list of them; ``[]`` / ``None`` skips the record).

Lines that cannot be read are counted as skipped, not fatal.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import inspect
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pandas as pd

log = logging.getLogger("modelyard.monitor.analyzer")

CAPTURE_INDEXES = ("endpointInput", "endpointOutput")


class DatasetError(Exception):
    """The dataset cannot be read as asked; the message says what to fix."""


@dataclass
class Dataset:
    """The rows to profile. ``positional`` when columns have no names of their own (CSV
    without header, capture CSV), so they are named after the baseline's features."""

    frame: pd.DataFrame
    positional: bool
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def parse_format(text: str | None) -> tuple[str, dict[str, Any]]:
    """(format name, its options) of the ``dataset_format`` variable."""
    if not text:
        raise DatasetError("The dataset_format environment variable is required, e.g. "
                           '{"csv": {"header": true}} or {"sagemakerCaptureJson": {}}.')
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(f"dataset_format is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict) or len(value) != 1:
        raise DatasetError(f"dataset_format must be an object with one format, got {text!r}.")
    (name, options), = value.items()
    known = {"csv", "json", "parquet", "sagemakerCaptureJson", "sagemakerMergeJson"}
    lowered = {k.lower(): k for k in known}
    if name.lower() not in lowered:
        raise DatasetError(f"dataset_format {name!r} is not one of {sorted(known)}.")
    return lowered[name.lower()], options if isinstance(options, dict) else {}


def source_files(source: str) -> list[Path]:
    root = Path(source)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def read_dataset(env: dict[str, str]) -> Dataset:
    """The table the environment's dataset_format / dataset_source describe."""
    name, options = parse_format(env.get("dataset_format"))
    source = env.get("dataset_source") or "/opt/ml/processing/input"
    files = source_files(source)
    if name == "csv":
        return _read_csv(files, _truthy(options.get("header", True)))
    if name == "json":
        return _read_json(files, _truthy(options.get("lines", options.get("line", True))))
    if name == "parquet":
        return _read_parquet(files)
    if name == "sagemakerCaptureJson":
        indexes = options.get("captureIndexNames") or list(CAPTURE_INDEXES)
        script = env.get("record_preprocessor_script")
        handler = load_preprocessor(script) if script else None
        return read_capture(files, indexes, handler, _time(env.get("start_time")),
                            _time(env.get("end_time")))
    raise DatasetError(f"dataset_format {name} is not a data quality format.")


def _truthy(value: Any) -> bool:
    if isinstance(value, list):  # the docs' {"header": ["true", "false"]} placeholder
        value = value[0] if value else True
    return str(value).strip().lower() not in ("false", "0", "no")


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    cleaned = text.replace(" ", "").replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise DatasetError(f"{text!r} is not an ISO 8601 time (start_time / end_time).") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_csv_text(text: str | io.IOBase, header: bool, names: list[str] | None = None
                  ) -> pd.DataFrame:
    """CSV as the analyzer types it: only empty fields are missing; ints stay ints."""
    return pd.read_csv(text if not isinstance(text, str) else io.StringIO(text),
                       header=0 if header else None, names=names, keep_default_na=False,
                       na_values=[""], dtype_backend="numpy_nullable", skipinitialspace=True,
                       on_bad_lines="skip")


def _read_csv(files: list[Path], header: bool) -> Dataset:
    frames = []
    for path in files:
        if path.stat().st_size == 0:
            continue
        try:
            frame = read_csv_text(path, header)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
            raise DatasetError(f"{path.name} is not readable CSV: {error}") from None
        if not header:
            frame.columns = [f"_c{i}" for i in range(frame.shape[1])]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Dataset(frame, positional=not header)


def _read_json(files: list[Path], lines: bool) -> Dataset:
    rows: list[dict[str, Any]] = []
    skipped = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        chunks = text.splitlines() if lines else [text]
        for chunk in chunks:
            if not chunk.strip():
                continue
            try:
                value = json.loads(chunk)
            except json.JSONDecodeError:
                skipped += 1
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    rows.append(flatten(item))
                else:
                    skipped += 1
    return Dataset(pd.DataFrame.from_records(rows), positional=False, skipped=skipped)


def _read_parquet(files: list[Path]) -> Dataset:
    try:
        frames = [pd.read_parquet(path) for path in files if path.stat().st_size]
    except ImportError:
        raise DatasetError("Reading parquet needs pyarrow, which this modelyard installation "
                           "lacks; use csv or json datasets, or install pyarrow.") from None
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's data
        raise DatasetError(f"The parquet dataset is not readable: {error}") from None
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Dataset(frame, positional=False)


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested JSON as flat features: ``{"a": {"b": 1}, "c": [2, 3]}`` -> a.b, c.0, c.1."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            flatten(item, f"{prefix}.{index}" if prefix else str(index), out)
    else:
        out[prefix or "value"] = value
    return out


# -- data capture -------------------------------------------------------------------------

def load_preprocessor(path: str) -> Callable[..., Any]:
    """``preprocess_handler`` of the user's record preprocessor script."""
    script = Path(path)
    if not script.is_file():
        raise DatasetError(f"record_preprocessor_script {path} does not exist in the container.")
    spec = importlib.util.spec_from_file_location("record_preprocessor", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as error:  # noqa: BLE001 - report the user's error
        raise DatasetError(f"record_preprocessor_script {script.name} failed to load: "
                           f"{type(error).__name__}: {error}") from None
    handler = getattr(module, "preprocess_handler", None)
    if not callable(handler):
        raise DatasetError(f"record_preprocessor_script {script.name} must define "
                           "preprocess_handler(inference_record).")
    if len(inspect.signature(handler).parameters) >= 2:
        logger = logging.getLogger("record_preprocessor")
        return lambda record: handler(record, logger)
    return handler


def inference_record(record: dict[str, Any]) -> SimpleNamespace:
    """The object SageMaker passes to preprocess_handler."""
    data = record.get("captureData") or {}
    meta = record.get("eventMetadata") or {}

    def payload(item: dict[str, Any] | None) -> SimpleNamespace | None:
        if item is None:
            return None
        return SimpleNamespace(observed_content_type=item.get("observedContentType"),
                               mode=item.get("mode"), data=item.get("data", ""),
                               encoding=item.get("encoding"))

    return SimpleNamespace(
        event_metadata=SimpleNamespace(event_id=meta.get("eventId"),
                                       inference_id=meta.get("inferenceId"),
                                       inference_time=meta.get("inferenceTime"),
                                       custom_attribute=meta.get("customAttributes")),
        event_version=record.get("eventVersion"),
        endpoint_input=payload(data.get("endpointInput")),
        endpoint_output=payload(data.get("endpointOutput")),
    )


def _payload_rows(item: dict[str, Any]) -> list[list[str] | dict[str, Any]]:
    """One captured payload as rows: CSV lines as value lists, JSON as flat dicts."""
    encoding = str(item.get("encoding", "")).upper()
    text = item.get("data", "")
    content_type = str(item.get("observedContentType", "")).lower()
    if encoding == "BASE64":
        text = base64.b64decode(text).decode("utf-8")
        encoding = "JSON" if "json" in content_type else "CSV" if "csv" in content_type else ""
    if encoding == "JSON":
        value = json.loads(text)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return [flatten(v) for v in value]
        if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            return [["" if v is None else str(v) for v in value]]
        return [flatten(value)]
    if encoding == "CSV":
        lines = [line for line in str(text).splitlines() if line.strip()]
        return [next(csv.reader([line], skipinitialspace=True)) for line in lines] or [[""]]
    raise ValueError(f"payload encoding {encoding or 'unknown'} is neither CSV nor JSON")


def _combine(parts: list[list[list[str] | dict[str, Any]]]) -> list[list[str] | dict[str, Any]]:
    """Output rows then input rows, side by side (row i with row i when both have n rows)."""
    counts = {len(rows) for rows in parts}
    if len(counts) != 1:  # one output line for n input lines: keep them as one record
        parts = [[_merge(rows)] for rows in parts]
    combined: list[list[str] | dict[str, Any]] = []
    for row_parts in zip(*parts):
        combined.append(_merge(list(row_parts)))
    return combined


def _merge(rows: list[list[str] | dict[str, Any]]) -> list[str] | dict[str, Any]:
    if all(isinstance(row, list) for row in rows):
        return [value for row in rows for value in row]  # type: ignore[union-attr]
    merged: dict[str, Any] = {}
    position = 0
    for row in rows:
        if isinstance(row, list):
            for value in row:
                merged[f"_c{position}"] = value
                position += 1
        else:
            merged.update(row)
    return merged


def read_capture(files: list[Path], indexes: list[str], handler: Callable[..., Any] | None,
                 start: datetime | None, end: datetime | None) -> Dataset:
    """Data capture JSON lines -> rows (see the module docstring)."""
    order = [name for name in ("endpointOutput", "endpointInput") if name in indexes]
    rows: list[list[str] | dict[str, Any]] = []
    skipped = 0
    errors: list[str] = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                      .splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
                    raise ValueError("no captureData object")
                if not _in_window(record, start, end):
                    continue
                if handler is not None:
                    produced = _preprocess(handler, record)
                else:
                    data = record["captureData"]
                    parts = [_payload_rows(data[name]) for name in order if name in data]
                    if not parts:
                        raise ValueError(f"none of {order} captured")
                    produced = _combine(parts)
            except PreprocessorError:
                raise
            except Exception as error:  # noqa: BLE001 - a bad line is skipped and counted
                skipped += 1
                if len(errors) < 3:
                    errors.append(f"{path.name} line {number}: {error}")
                continue
            rows.extend(produced)
    for message in errors:
        log.warning("skipped capture record: %s", message)
    return Dataset(_rows_frame(rows), positional=bool(rows) and isinstance(rows[0], list),
                   skipped=skipped, notes=errors)


class PreprocessorError(DatasetError):
    """The user's preprocess_handler raised."""


def _preprocess(handler: Callable[..., Any], record: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        result = handler(inference_record(record))
    except Exception as error:  # noqa: BLE001 - report the user's error
        raise PreprocessorError(f"preprocess_handler raised {type(error).__name__}: {error}"
                                ) from None
    if result is None:
        return []
    if isinstance(result, dict):
        return [flatten(result)]
    if isinstance(result, list) and all(isinstance(item, dict) for item in result):
        return [flatten(item) for item in result]
    raise PreprocessorError("preprocess_handler must return a dict of features, a list of "
                            f"dicts or [] to skip the record, not {type(result).__name__}.")


def _in_window(record: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    stamp = (record.get("eventMetadata") or {}).get("inferenceTime")
    if not stamp:
        return True
    moment = _time(stamp)
    return (start is None or moment >= start) and (end is None or moment < end)


def _rows_frame(rows: list[list[str] | dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame()
    if all(isinstance(row, list) for row in rows):
        width = max(len(row) for row in rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(rows)  # type: ignore[arg-type]
        buffer.seek(0)
        return read_csv_text(buffer, header=False, names=[f"_c{i}" for i in range(width)])
    dicts = [row if isinstance(row, dict) else {f"_c{i}": v for i, v in enumerate(row)}
             for row in rows]
    return pd.DataFrame.from_records(dicts)
