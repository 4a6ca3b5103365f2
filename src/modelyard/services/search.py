"""SageMaker Search over the resources modelyard stores.

One indexed query per search reads the kind's rows (id and document text); documents are
decoded once and cached by row id while their text is unchanged, so a search over 10,000
training jobs costs a scan of cached Python dicts. Filtering, sorting and paging happen in
Python on the search view of each Describe document (``search.expressions``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from ..api.context import RequestContext
from ..api.errors import validation_error
from ..api.shapes import service_model
from ..search.expressions import (
    Document, compile_expression, resolve_path, search_view, sort_key,
)
from ..store.resources import resources_table

DEFAULT_MAX_RESULTS = 10

# SearchResource -> the store's kind (None: searchable, nothing of it is stored yet).
SEARCHABLE: dict[str, str | None] = {
    "TrainingJob": "TrainingJob",
    "ModelPackage": "ModelPackage",
    "ModelPackageGroup": "ModelPackageGroup",
    "Pipeline": "Pipeline",
    "PipelineExecution": "PipelineExecution",
    "Endpoint": "Endpoint",
    "Model": "Model",
    "ModelCard": "ModelCard",
    "HyperParameterTuningJob": "HyperParameterTuningJob",
}


def _present(resource: str, document: Document) -> Document:
    """The record as SageMaker's Search returns it: the Describe document, tags included."""
    shown = {key: value for key, value in document.items() if not key.startswith("_")}
    if resource == "TrainingJob" and shown.get("ModelArtifacts", {}).get("S3ModelArtifacts") == "":
        shown.pop("ModelArtifacts")  # as DescribeTrainingJob: not known until uploaded
    if resource == "Model":  # a ModelDashboardModel record wraps the model
        return {"Model": shown, "Tags": shown.get("Tags", [])}
    return shown


class _Cache:
    """Decoded records and search views of one kind, kept while the kind is unchanged.

    A search first reads the kind's signature -- row count, highest id and the sum of
    last-modified times, one aggregate over the (kind, ...) index: any create, delete or
    update (which always sets a new last-modified time) changes it. When it changed, the
    (id, last-modified time) pairs say which documents to read and decode again.
    """

    def __init__(self) -> None:
        self.signature: tuple[Any, ...] | None = None
        self.entries: dict[int, tuple[float, Document, Document]] = {}
        self.ordered: list[tuple[Document, Document]] = []
        self.lock = threading.Lock()

    def views(self, ctx: RequestContext, resource: str, kind: str
              ) -> list[tuple[Document, Document]]:
        table = resources_table
        of_kind = table.c.kind == kind
        with ctx.platform.resources.db.read() as connection:
            signature = tuple(connection.execute(
                select(func.count(), func.max(table.c.id), func.sum(table.c.last_modified_time))
                .where(of_kind)).one())
            with self.lock:
                if signature == self.signature:
                    return self.ordered
                stamps = connection.execute(
                    select(table.c.id, table.c.last_modified_time).where(of_kind)
                    .order_by(table.c.id)).all()
                stale = [row.id for row in stamps
                         if (entry := self.entries.get(row.id)) is None
                         or entry[0] != row.last_modified_time]
                fresh: dict[int, Any] = {}
                for start in range(0, len(stale), 500):
                    chunk = stale[start:start + 500]
                    fresh.update((row.id, row) for row in connection.execute(
                        select(table.c.id, table.c.last_modified_time, table.c.document)
                        .where(table.c.id.in_(chunk))).all())
                entries: dict[int, tuple[float, Document, Document]] = {}
                for row in stamps:
                    if row.id in fresh:
                        record = _present(resource, json.loads(fresh[row.id].document))
                        entries[row.id] = (fresh[row.id].last_modified_time, record,
                                           search_view(record))
                    elif row.id in self.entries:
                        entries[row.id] = self.entries[row.id]
                self.entries = entries
                self.ordered = [(entry[1], entry[2]) for entry in entries.values()]
                self.signature = signature
                return self.ordered


_CACHES: dict[tuple[int, str], _Cache] = {}
_CACHES_LOCK = threading.Lock()


def _cache_for(ctx: RequestContext, resource: str) -> _Cache:
    key = (id(ctx.platform.resources), resource)
    with _CACHES_LOCK:
        return _CACHES.setdefault(key, _Cache())


def _record_shape(resource: str) -> Any:
    record = service_model("sagemaker").operation_model("Search").output_shape \
        .members["Results"].member
    return record.members[resource]


def search(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = request["Resource"]
    if resource not in SEARCHABLE:
        raise validation_error(
            f"Search does not support Resource '{resource}' on modelyard. Supported: "
            f"{', '.join(SEARCHABLE)}.")
    record = _record_shape(resource)
    expression = request.get("SearchExpression")
    matches: Callable[[Document], bool] | None = (
        compile_expression(expression, record, resource) if expression is not None else None)
    default_sort = "Model.CreationTime" if resource == "Model" else "CreationTime"
    sort_path = resolve_path(record, request.get("SortBy", default_sort), resource)
    descending = request.get("SortOrder", "Descending") == "Descending"
    max_results = request.get("MaxResults", DEFAULT_MAX_RESULTS)
    fingerprint = _fingerprint(request)
    offset = _decode_token(request.get("NextToken"), fingerprint)

    kind = SEARCHABLE[resource]
    views = _cache_for(ctx, resource).views(ctx, resource, kind)
    hits = [pair for pair in views if matches is None or matches(pair[1])]
    key = sort_key(sort_path)
    present = [pair for pair in hits if key(pair[1])[0] != 2]
    absent = [pair for pair in hits if key(pair[1])[0] == 2]
    present.sort(key=lambda pair: key(pair[1]), reverse=descending)
    ordered = present + absent
    page = ordered[offset:offset + max_results]
    result: dict[str, Any] = {"Results": [{resource: shown} for shown, _ in page]}
    if offset + max_results < len(ordered):
        result["NextToken"] = _encode_token(offset + max_results, fingerprint)
    return result


def _fingerprint(request: dict[str, Any]) -> str:
    """What a NextToken is tied to: the request without its paging members."""
    asked = {key: value for key, value in request.items() if key not in ("NextToken", "MaxResults")}
    text = json.dumps(asked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "f": fingerprint}).encode()).decode()


def _decode_token(token: str | None, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["f"] != fingerprint or int(data["o"]) < 0:
            raise ValueError
        return int(data["o"])
    except Exception:
        raise validation_error(
            "The NextToken is not valid for this search. Pass it exactly as the previous "
            "response returned it, with the same Resource, SearchExpression and SortBy.") from None


OPERATIONS = {"Search": search}
