"""Pipelines, executions and step records in the resource store.

An execution's steps are resources of kind ``PipelineExecutionStep`` named
``<execution id>/<step name>``, with the execution id as parent, so listing an
execution's steps is one indexed query and every change is one transaction.
Documents hold the ListPipelineExecutionSteps entry; keys starting with ``_`` are
internal (the step's properties for ``Get``, its job, its cache key) and never reach
clients, because responses are shaped by botocore's output shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.errors import validation_error
from ..store.resources import ListQuery, Resource

if TYPE_CHECKING:
    from ..platform import Platform

PIPELINE = "Pipeline"
EXECUTION = "PipelineExecution"
STEP = "PipelineExecutionStep"

FINISHED_STEP = ("Succeeded", "Failed", "Stopped")
FINISHED_EXECUTION = ("Succeeded", "Failed", "Stopped")


def step_record_name(execution_id: str, step_name: str) -> str:
    return f"{execution_id}/{step_name}"


def execution_steps(platform: "Platform", execution_id: str) -> dict[str, dict[str, Any]]:
    """Every step record of an execution, by step name."""
    records: dict[str, dict[str, Any]] = {}
    token = None
    while True:
        page = platform.resources.list(STEP, ListQuery(
            parent=execution_id, descending=False, max_results=100, next_token=token))
        for item in page.items:
            records[item.document["StepName"]] = item.document
        token = page.next_token
        if not token:
            return records


def create_step_record(platform: "Platform", execution_id: str, execution_arn: str,
                       document: dict[str, Any]) -> None:
    name = step_record_name(execution_id, document["StepName"])
    platform.resources.create(
        STEP, name, f"{execution_arn}/step/{document['StepName']}", document,
        now=platform.clock.now(), status=document["StepStatus"], parent=execution_id)


def update_step_record(platform: "Platform", execution_id: str, step_name: str,
                       change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    def apply(resource: Resource) -> dict[str, Any]:
        document = dict(resource.document)
        change(document)
        document["__status__"] = document["StepStatus"]
        return document

    return platform.resources.update(
        STEP, step_record_name(execution_id, step_name), apply, now=platform.clock.now(),
        missing=lambda: validation_error(f"Step {step_name} of execution {execution_id} is gone."),
    ).document


def delete_step_record(platform: "Platform", execution_id: str, step_name: str) -> None:
    platform.resources.delete(STEP, step_record_name(execution_id, step_name))


def update_execution(platform: "Platform", execution_id: str,
                     change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    now = platform.clock.now()

    def apply(resource: Resource) -> dict[str, Any]:
        document = dict(resource.document)
        change(document)
        document["LastModifiedTime"] = now
        document["__status__"] = document["PipelineExecutionStatus"]
        return document

    return platform.resources.update(
        EXECUTION, execution_id, apply, now=now,
        missing=lambda: validation_error(f"Pipeline execution {execution_id} is gone."),
    ).document


def execution_id_from_arn(arn: str) -> str:
    """``arn:...:pipeline/<name>/execution/<id>`` -> ``<id>``."""
    marker = "/execution/"
    if marker not in arn:
        raise validation_error(
            f"{arn!r} is not a pipeline execution ARN "
            "(arn:aws:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>).")
    return arn.rsplit(marker, 1)[1]
