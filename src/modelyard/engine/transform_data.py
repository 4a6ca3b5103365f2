"""Batch transform's record handling: splitting files, mini-batches, DataProcessing.

``DataProcessing`` uses the JSONPath subset SageMaker documents for batch transform
(plain Python, no library): ``$`` (the whole record), ``.name`` and ``['name','other']``
(object members), ``*`` / ``[*]`` (every member or element), ``[i,j,...]`` (indexes, negative
from the end) and ``[start:end]`` (slices, either bound optional). A CSV record is read as
a JSON array of its fields (strings) and written back as CSV; a JSON / JSON Lines record
is a JSON value. ``JoinSource=Input`` appends the model's output to a CSV record's fields,
puts it under ``SageMakerOutput`` of a JSON object, or wraps anything else as
``{"SageMakerInput": ..., "SageMakerOutput": ...}``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines")
_TOKEN = re.compile(r"""\.(\*|[A-Za-z_][\w-]*)|\[([^\]]*)\]""")


class FilterError(ValueError):
    """A JSONPath outside the subset, or one that does not fit a record."""


@dataclass(frozen=True)
class Step:
    kind: str  # "names", "indexes", "slice", "all"
    names: tuple[str, ...] = ()
    indexes: tuple[int, ...] = ()
    start: int | None = None
    end: int | None = None


def parse_path(path: str) -> tuple[Step, ...] | None:
    """The steps of a JSONPath of the subset; None for ``$`` (the whole record)."""
    text = (path or "$").strip()
    if not text.startswith("$"):
        raise FilterError(f"JSONPath {path!r} must start with $ (e.g. $, $[1:], $.features).")
    steps: list[Step] = []
    position = 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"JSONPath {path!r}: cannot read {text[position:]!r}; batch "
                              "transform supports $, .name, ['a','b'], [*], [0,2], [1:], [:-1].")
        position = match.end()
        steps.append(_step(match.group(1), match.group(2), path))
    return tuple(steps) or None


def _step(member: str | None, bracket: str | None, path: str) -> Step:
    if member is not None:
        return Step("all") if member == "*" else Step("names", names=(member,))
    inner = (bracket or "").strip()
    if inner == "*":
        return Step("all")
    if inner.startswith(("'", '"')):
        names = [item.strip() for item in inner.split(",")]
        if not all(len(n) >= 2 and n[0] == n[-1] and n[0] in "'\"" for n in names):
            raise FilterError(f"JSONPath {path!r}: quote every name in [{inner}].")
        return Step("names", names=tuple(n[1:-1] for n in names))
    try:
        if ":" in inner:
            start, _, end = inner.partition(":")
            return Step("slice", start=int(start) if start.strip() else None,
                        end=int(end) if end.strip() else None)
        return Step("indexes", indexes=tuple(int(item) for item in inner.split(",")))
    except ValueError:
        raise FilterError(f"JSONPath {path!r}: [{inner}] is not an index list, slice or "
                          "quoted name list.") from None


def apply_path(steps: tuple[Step, ...] | None, value: Any) -> Any:
    """Select from ``value``; a multi-select keeps a list (an object for names)."""
    if steps is None:
        return value
    for step in steps:
        value = _apply(step, value)
    return value


def _apply(step: Step, value: Any) -> Any:
    if step.kind == "all":
        return list(value.values()) if isinstance(value, dict) else list(value)
    if step.kind == "names":
        if not isinstance(value, dict):
            raise FilterError(f"cannot select {list(step.names)} from a non-object record")
        missing = [name for name in step.names if name not in value]
        if missing:
            raise FilterError(f"the record has no member {missing[0]!r}")
        if len(step.names) == 1:
            return value[step.names[0]]
        return {name: value[name] for name in step.names}
    if not isinstance(value, list):
        raise FilterError("cannot index a record that is not an array")
    if step.kind == "slice":
        return value[step.start:step.end]
    for index in step.indexes:
        if not -len(value) <= index < len(value):
            raise FilterError(f"index {index} is outside the record's {len(value)} fields")
    if len(step.indexes) == 1:
        return value[step.indexes[0]]
    return [value[index] for index in step.indexes]


# --- records ------------------------------------------------------------------------------


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in JSON_TYPES


def split_records(data: bytes, split_type: str) -> list[bytes]:
    """SplitType Line: one record per non-empty line; None: the whole file is one record."""
    if split_type == "Line":
        return [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]
    return [data] if data else []


def _csv_fields(record: bytes) -> list[str]:
    rows = list(csv.reader(io.StringIO(record.decode("utf-8"))))
    return rows[0] if rows else []


def _csv_line(fields: Any) -> bytes:
    if not isinstance(fields, list):
        fields = [fields]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        [json.dumps(item) if isinstance(item, (dict, list)) else item for item in fields])
    return buffer.getvalue().encode()


def _parse(record: bytes, json_records: bool) -> Any:
    if json_records:
        return json.loads(record)
    return _csv_fields(record)


def _render(value: Any, json_records: bool) -> bytes:
    if json_records:
        return json.dumps(value, separators=(",", ":")).encode()
    return _csv_line(value)


@dataclass(frozen=True)
class DataProcessing:
    """A job's DataProcessing, parsed once; ``None`` paths are ``$``."""

    input_filter: tuple[Step, ...] | None
    output_filter: tuple[Step, ...] | None
    join_input: bool
    json_input: bool  # records are JSON (ContentType), else CSV
    json_output: bool  # the model answers JSON (Accept), else CSV / text

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> "DataProcessing":
        processing = job.get("DataProcessing") or {}
        return cls(parse_path(processing.get("InputFilter", "$")),
                   parse_path(processing.get("OutputFilter", "$")),
                   processing.get("JoinSource", "None") == "Input",
                   is_json(job["TransformInput"].get("ContentType")),
                   is_json(job.get("TransformOutput", {}).get("Accept")))

    @property
    def per_record_output(self) -> bool:
        """True when outputs must be matched to records (a join or an output filter)."""
        return self.join_input or self.output_filter is not None

    def filter_input(self, record: bytes) -> bytes:
        if self.input_filter is None:
            return record
        return _render(apply_path(self.input_filter, _parse(record, self.json_input)),
                       self.json_input)

    def finish(self, record: bytes, output: bytes) -> bytes:
        """The output line of one record: joined with the input and filtered as asked."""
        if not self.join_input:
            value = _parse(output, self.json_output) if self.output_filter else None
            return output if value is None else _render(apply_path(self.output_filter, value),
                                                        self.json_output)
        if self.json_input:
            source = json.loads(record)
            try:
                result: Any = json.loads(output)
            except ValueError:
                result = output.decode("utf-8", errors="replace")
            if isinstance(source, dict):
                joined: Any = {**source, "SageMakerOutput": result}
            else:
                joined = {"SageMakerInput": source, "SageMakerOutput": result}
            return _render(apply_path(self.output_filter, joined), True)
        if self.json_output:
            fields = _csv_fields(record) + [json.loads(output)]
        elif self.output_filter is None:
            return record + b"," + output  # the common case, without re-encoding
        else:
            fields = _csv_fields(record) + _csv_fields(output)
        return _csv_line(apply_path(self.output_filter, fields))


def mini_batches(records: list[bytes], max_bytes: int, multi: bool) -> list[tuple[int, int]]:
    """(start, end) record ranges: one record each, or as many whole records (joined by
    newlines) as fit in ``max_bytes``. A record alone over the limit raises FilterError."""
    batches: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, record in enumerate(records):
        length = len(record) + 1
        if max_bytes and length - 1 > max_bytes:
            raise FilterError(f"record {index + 1} is {length - 1} bytes, over MaxPayloadInMB "
                              f"({max_bytes // (1024 * 1024)} MB); raise MaxPayloadInMB or "
                              "split the file into smaller records")
        if not multi:
            batches.append((index, index + 1))
            continue
        if index > start and max_bytes and size + length > max_bytes:
            batches.append((start, index))
            start, size = index, 0
        size += length
    if multi and start < len(records):
        batches.append((start, len(records)))
    return batches


@dataclass(frozen=True)
class LineBatches:
    """MultiRecord mini-batches cut straight out of a SplitType Line file's bytes."""

    records: int
    batches: list[tuple[int, int, int, int]]  # (first record, end record, first byte, end byte)


def line_batches(data: bytes, max_bytes: int) -> LineBatches | None:
    """What ``mini_batches(split_records(data, "Line"), max_bytes, True)`` gives, without
    a list of records: each batch is a slice of ``data`` (ending in a newline) equal to its
    records joined with newlines plus one. None when lines need cleaning first (a carriage
    return, blank or whitespace-only lines, a missing final newline): use the record path.
    A record alone over ``max_bytes`` raises FilterError as ``mini_batches`` does."""
    if not data or not data.endswith(b"\n") or data.startswith(b"\n") or b"\n\n" in data:
        return None
    if any(byte in data for byte in (b"\r", b" ", b"\t", b"\x0b", b"\x0c")):
        return None
    batches: list[tuple[int, int, int, int]] = []
    start, record, size = 0, 0, len(data)
    while start < size:
        end = data.rfind(b"\n", start, start + max_bytes) + 1 if max_bytes else size
        if end <= start:  # the next record alone fills a batch, or is over the limit
            end = data.index(b"\n", start) + 1
            length = end - 1 - start
            if length <= max_bytes:
                batches.append((record, record + 1, start, end))
                start, record = end, record + 1
                continue
            raise FilterError(f"record {record + 1} is {length} bytes, over MaxPayloadInMB "
                              f"({max_bytes // (1024 * 1024)} MB); raise MaxPayloadInMB or "
                              "split the file into smaller records")
        count = data.count(b"\n", start, end)
        batches.append((record, record + count, start, end))
        start, record = end, record + count
    return LineBatches(record, batches)


def split_output(body: bytes, expected: int) -> list[bytes]:
    """A mini-batch's answer as one output per record (one per line)."""
    if expected == 1:
        return [body.rstrip(b"\r\n")]
    lines = [line.rstrip(b"\r") for line in body.rstrip(b"\r\n").split(b"\n")]
    if len(lines) != expected:
        raise FilterError(f"the model answered {len(lines)} lines for {expected} records, so "
                          "outputs cannot be matched to inputs (JoinSource/OutputFilter need "
                          "one output line per record)")
    return lines
