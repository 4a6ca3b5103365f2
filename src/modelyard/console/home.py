"""Home: how many of each resource there are, what is running now, what changed lately."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..store.resources import ListQuery, Resource
from .html import Safe, el, link, seg, status, table, url, when, duration
from .page import View, heading, page

if TYPE_CHECKING:
    from ..platform import Platform

# (store kind, label, list page, how a resource links) for the counts and activity.
KINDS: list[tuple[str, str, str]] = [
    ("Pipeline", "Pipelines", "/console/pipelines"),
    ("PipelineExecution", "Pipeline executions", "/console/pipelines"),
    ("TrainingJob", "Training jobs", "/console/jobs?type=training"),
    ("ProcessingJob", "Processing jobs", "/console/jobs?type=processing"),
    ("TransformJob", "Transform jobs", "/console/jobs?type=transform"),
    ("ModelPackageGroup", "Model package groups", "/console/models"),
    ("ModelPackage", "Model versions", "/console/models"),
    ("Endpoint", "Endpoints", "/console/endpoints"),
]
RUNNING = {"PipelineExecution": "Executing", "TrainingJob": "InProgress",
           "ProcessingJob": "InProgress", "TransformJob": "InProgress"}
RECENT = 15


def resource_link(item: Resource) -> Safe | str:
    """Where a stored resource is shown in the console."""
    families = {"TrainingJob": "training", "ProcessingJob": "processing",
                "TransformJob": "transform"}
    if item.kind in families:
        return link(f"/console/jobs/{families[item.kind]}/{seg(item.name)}", item.name)
    if item.kind == "Pipeline":
        return link(f"/console/pipelines/{seg(item.name)}", item.name)
    if item.kind == "PipelineExecution":
        pipeline = item.document.get("PipelineArn", "").rsplit("/", 1)[-1]
        name = _pipeline_name(item) or pipeline
        return link(url(f"/console/pipelines/{seg(name)}/execution", arn=item.arn),
                    f"{name} / {item.name}")
    if item.kind == "ModelPackageGroup":
        return link(f"/console/models/{seg(item.name)}", item.name)
    if item.kind == "ModelPackage":
        return link(url("/console/models/package", arn=item.arn),
                    item.document.get("ModelPackageGroupName", "") + " v"
                    + str(item.document.get("ModelPackageVersion", "")))
    if item.kind == "Endpoint":
        return link(f"/console/endpoints/{seg(item.name)}", item.name)
    return item.name


def _pipeline_name(item: Resource) -> str:
    return str(item.document.get("PipelineName") or item.parent or "")


def home(view: View) -> tuple[str, Safe]:
    resources = view.platform.resources
    counts = [el("li", link(href, el("strong", str(resources.count(kind))), el("span", label)))
              for kind, label, href in KINDS]
    running: list[Resource] = []
    for kind, state in RUNNING.items():
        # Ordered by status (all equal): SQLite then walks the (kind, status) index instead
        # of every row of the kind by creation time.
        running += resources.list(kind, ListQuery(status_equals=state, sort_by="status",
                                                  max_results=20)).items
    running.sort(key=lambda item: item.creation_time, reverse=True)
    now = view.now()
    running_rows = [[_label(item.kind), resource_link(item), status(item.status),
                     duration(item.creation_time, None, now)] for item in running]
    # The newest of each kind (an indexed query: with 10,000 jobs a sort by modification
    # time would read every document), and whatever runs, by when they last changed.
    recent: list[Resource] = list(running)
    for kind, _, _ in KINDS:
        recent += resources.list(kind, ListQuery(max_results=RECENT)).items
    recent = list({(item.kind, item.name): item for item in recent}.values())
    recent.sort(key=lambda item: item.last_modified_time, reverse=True)
    recent_rows = [[when(item.last_modified_time), _label(item.kind), resource_link(item),
                    status(item.status) if item.status else ""]
                   for item in recent[:RECENT]]
    body = el("section", heading("Overview"),
              el("ul", *counts, class_="counts", id="counts"),
              el("div", el("h2", "Running now"),
                 table(["Kind", "Name", "Status", "Running for"], running_rows,
                       empty="Nothing is running.", id="running"),
                 id="running-live", data_live="1"),
              el("h2", "Recent activity"),
              table(["When", "Kind", "Name", "Status"], recent_rows,
                    empty="No activity yet.", id="recent"))
    return "Home", body


def _label(kind: str) -> str:
    return {"PipelineExecution": "Pipeline execution", "TrainingJob": "Training job",
            "ProcessingJob": "Processing job", "TransformJob": "Transform job",
            "ModelPackageGroup": "Model group", "ModelPackage": "Model version"}.get(kind, kind)


def routes(platform: "Platform") -> list[Route]:
    return [Route("/console/", page(platform, home, "/console/"), methods=["GET"])]


__all__: list[Any] = ["routes"]
