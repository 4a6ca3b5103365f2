"""Checks CreateTrainingJob and CreateProcessingJob share: what modelyard can run."""

from __future__ import annotations

import re
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..engine.channels import S3Location
from ..engine.job_records import update_job
from ..store.resources import Resource
from .common import list_query

# SageMaker's runtime limit for a job whose request sets none: one day.
DEFAULT_MAX_RUNTIME_SECONDS = 86400


def require_single_instance(count: int, member: str) -> None:
    if count != 1:
        raise validation_error(
            f"{member} is {count}; modelyard runs each job on one instance until distributed "
            "execution lands. Set instance_count=1."
        )


def require_file_mode(mode: str | None, member: str) -> None:
    if mode == "Pipe":
        raise validation_error(
            f"{member} Pipe is not supported by modelyard; use File (FastFile is read as File)."
        )


def require_s3_uri(uri: str, member: str) -> None:
    S3Location.parse(uri, member)


def check_metric_definitions(definitions: list[dict[str, Any]]) -> None:
    for definition in definitions:
        try:
            pattern = re.compile(definition["Regex"])
        except re.error as error:
            raise validation_error(
                f"MetricDefinitions {definition['Name']}: Regex {definition['Regex']!r} is not "
                f"a valid regular expression ({error})."
            ) from None
        if pattern.groups < 1:
            raise validation_error(
                f"MetricDefinitions {definition['Name']}: Regex {definition['Regex']!r} needs a "
                "capture group around the number, e.g. 'accuracy: ([0-9.]+)'."
            )


def job_exists(kind_label: str, arn: str) -> AwsError:
    return AwsError(
        "ResourceInUse",
        f"{kind_label} names must be unique within an account and region, and a "
        f"{kind_label.lower()} with this name already exists ({arn}). Choose another name.",
    )


def job_not_found(kind_label: str, name: str) -> AwsError:
    return validation_error(f"Requested resource not found: {kind_label} {name} does not exist.")


def not_stoppable(kind_label: str, name: str, status: str) -> AwsError:
    return validation_error(
        f"The request was rejected because the {kind_label.lower()} {name} is in status "
        f"{status}; only InProgress jobs can be stopped."
    )


def find_job(ctx: RequestContext, kind: str, label: str, name: str) -> Resource:
    found = ctx.platform.resources.get(kind, name)
    if found is None:
        raise job_not_found(label, name)
    return found


def list_jobs(ctx: RequestContext, kind: str, request: dict[str, Any], member: str) -> dict[str, Any]:
    """A List*Jobs response: the jobs' documents, shaped into summaries by the output shape."""
    query = list_query(request, sort_columns={
        "Name": "name", "CreationTime": "creation_time", "Status": "status"})
    page = ctx.platform.resources.list(kind, query)
    return {member: [item.document for item in page.items], "NextToken": page.next_token}


def request_stop(ctx: RequestContext, kind: str, label: str, name: str, status_field: str) -> None:
    """Stop*Job: an InProgress job becomes Stopping, and its runner is told to stop."""
    status = find_job(ctx, kind, label, name).document[status_field]
    if status != "InProgress":
        raise not_stoppable(label, name, status)
    update_job(ctx.platform, kind, name, lambda doc: doc.update({status_field: "Stopping"}),
               status_field=status_field)
    ctx.platform.executor.request_stop(kind, name)
