"""Pipeline versions in the resource store: each definition a pipeline ever had.

CreatePipeline records version 1 and every UpdatePipeline that changes the definition
records the next one, so an execution can start on any version's definition. A version is
a resource of kind ``PipelineVersion`` named ``<pipeline name>/<version id>`` with the
pipeline's name as parent. Its document holds the PipelineVersion members (botocore's
shape) and, under ``_definition``, the definition text, which never reaches clients.

A pipeline's latest version is also its Describe document's definition: where the record
is missing (a pipeline created before versions were recorded, or an UpdatePipeline whose
record is being written), that document stands in for it, and listing or changing such a
pipeline's versions first records it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..store.resources import ListQuery, Page, Resource

if TYPE_CHECKING:
    from ..platform import Platform

VERSION = "PipelineVersion"


def version_name(pipeline_name: str, version_id: int) -> str:
    return f"{pipeline_name}/{version_id}"


def record_version(platform: "Platform", pipeline: Resource, version_id: int, definition: str,
                   now: float, who: dict[str, Any]) -> None:
    """Store ``definition`` as version ``version_id`` of ``pipeline``, unless it is stored.

    A version that is already there was recorded from the same pipeline document by a
    request that looked at the versions in between.
    """
    document = {
        "PipelineArn": pipeline.arn,
        "PipelineVersionId": version_id,
        "CreationTime": now,
        "LastModifiedTime": now,
        "CreatedBy": who,
        "LastModifiedBy": who,
        "_definition": definition,
    }
    try:
        platform.resources.create(
            VERSION, version_name(pipeline.name, version_id),
            f"{pipeline.arn}/version/{version_id}", document, now=now, parent=pipeline.name)
    except AwsError as error:
        if error.code != "ResourceInUse":
            raise


def get_version(platform: "Platform", pipeline: Resource, version_id: int) -> dict[str, Any]:
    """The document of one version; ResourceNotFound names the versions there are."""
    found = platform.resources.get(VERSION, version_name(pipeline.name, version_id))
    if found is not None:
        return found.document
    latest = pipeline.document.get("PipelineVersionId", 1)
    if version_id == latest:
        return _latest_from_pipeline(pipeline)
    raise AwsError("ResourceNotFound",
                   f"Pipeline {pipeline.name} has no version {version_id}; its versions are "
                   f"1 to {latest} (ListPipelineVersions lists them).")


def list_versions(platform: "Platform", pipeline: Resource, query: ListQuery) -> Page:
    """A page of the pipeline's versions, in creation order as ``query`` asks."""
    _backfill(platform, pipeline)
    return platform.resources.list(VERSION, query)


def update_version(platform: "Platform", pipeline: Resource, version_id: int, now: float,
                   change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to a version's document in one transaction; answer the new document."""
    get_version(platform, pipeline, version_id)  # ResourceNotFound
    _backfill(platform, pipeline)

    def apply(resource: Resource) -> dict[str, Any]:
        document = dict(resource.document)
        change(document)
        return document

    return platform.resources.update(
        VERSION, version_name(pipeline.name, version_id), apply, now=now,
        missing=lambda: AwsError("ResourceNotFound",
                                 f"Version {version_id} of pipeline {pipeline.name} was deleted."),
    ).document


def delete_versions(platform: "Platform", pipeline_name: str) -> None:
    """Forget every version of a pipeline (DeletePipeline)."""
    while True:
        page = platform.resources.list(VERSION, ListQuery(parent=pipeline_name, max_results=100))
        if not page.items:
            return
        for item in page.items:
            platform.resources.delete(VERSION, item.name)


def _latest_from_pipeline(pipeline: Resource) -> dict[str, Any]:
    document = pipeline.document
    return {
        "PipelineArn": pipeline.arn,
        "PipelineVersionId": document.get("PipelineVersionId", 1),
        "CreationTime": document["LastModifiedTime"],
        "LastModifiedTime": document["LastModifiedTime"],
        "CreatedBy": document.get("LastModifiedBy", {}),
        "LastModifiedBy": document.get("LastModifiedBy", {}),
        "_definition": document["PipelineDefinition"],
    }


def _backfill(platform: "Platform", pipeline: Resource) -> None:
    """Record the latest version if its record is missing."""
    latest = _latest_from_pipeline(pipeline)
    if platform.resources.get(VERSION, version_name(pipeline.name, latest["PipelineVersionId"])):
        return
    record_version(platform, pipeline, latest["PipelineVersionId"], latest["_definition"],
                   latest["CreationTime"], latest["CreatedBy"])
