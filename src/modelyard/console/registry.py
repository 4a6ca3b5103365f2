"""The model registry: package groups, a group's versions, a version's evaluation
(``ModelMetrics`` JSON read from S3), its lineage to the training job, and approval
(UpdateModelPackage with ``ModelApprovalStatus`` and ``ApprovalDescription``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..api.errors import AwsError
from .html import Safe, definition_list, el, link, pager, s3_link, seg, status, table, url, when
from .page import (PAGE_SIZE, View, action, breadcrumbs, done, filter_form, heading,
                   list_request, page, read_json_object)

if TYPE_CHECKING:
    from ..platform import Platform

MAX_REPORT_BYTES = 256 * 1024


def group_url(name: str) -> str:
    return f"/console/models/{seg(name)}"


def package_url(arn: str) -> str:
    return url("/console/models/package", arn=arn)


def list_groups(view: View) -> tuple[str, Safe]:
    token, name = view.arg("token"), view.arg("name")
    result = view.call("sagemaker", "ListModelPackageGroups",
                       list_request(view, NameContains="name"))
    rows = [[link(group_url(item["ModelPackageGroupName"]), item["ModelPackageGroupName"]),
             item.get("ModelPackageGroupDescription") or "", when(item.get("CreationTime")),
             status(item.get("ModelPackageGroupStatus"))]
            for item in result.get("ModelPackageGroupSummaryList", [])]
    return "Model registry", el("section", heading("Model registry"), filter_form(view),
                                table(["Group", "Description", "Created", "Status"], rows,
                                      empty="No model package groups yet.", id="groups"),
                                pager("/console/models", result.get("NextToken"), name=name,
                                      token=token))


def show_group(view: View) -> tuple[str, Safe]:
    name = view.params["group"]
    group = view.call("sagemaker", "DescribeModelPackageGroup",
                      {"ModelPackageGroupName": name})
    token = view.arg("token")
    request: dict[str, Any] = {"ModelPackageGroupName": name, "MaxResults": PAGE_SIZE,
                               "SortBy": "CreationTime", "SortOrder": "Descending"}
    if token:
        request["NextToken"] = token
    result = view.call("sagemaker", "ListModelPackages", request)
    rows = [[link(package_url(item["ModelPackageArn"]),
                  f"Version {item.get('ModelPackageVersion', '')}"),
             status(item.get("ModelApprovalStatus")), when(item.get("CreationTime")),
             item.get("ModelPackageDescription") or ""]
            for item in result.get("ModelPackageSummaryList", [])]
    body = el("section", breadcrumbs(("/console/models", "Model registry"), ("", name)),
              heading(name),
              definition_list([("Description", group.get("ModelPackageGroupDescription")),
                               ("ARN", group.get("ModelPackageGroupArn")),
                               ("Created", when(group.get("CreationTime")))]),
              el("h2", "Versions"),
              table(["Version", "Approval", "Created", "Description"], rows,
                    empty="No versions registered yet.", id="versions"),
              pager(group_url(name), result.get("NextToken"), token=token))
    return name, body


def show_package(view: View) -> tuple[str, Safe]:
    arn = view.arg("arn")
    if not arn:
        raise AwsError("ValidationException", "Which model package? The link lacks its ARN.")
    package = view.call("sagemaker", "DescribeModelPackage", {"ModelPackageName": arn})
    group = package.get("ModelPackageGroupName")
    version = package.get("ModelPackageVersion")
    title = f"{group} version {version}" if group else package.get("ModelPackageName", arn)
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    here = package_url(arn)
    approval = el("form",
                  el("input", type="hidden", name="csrf", value=view.session.csrf_token),
                  el("input", type="hidden", name="arn", value=arn),
                  el("input", type="hidden", name="back", value=here),
                  el("label", "Comment (ApprovalDescription)",
                     el("textarea", package.get("ApprovalDescription") or "", name="comment",
                        rows="2", maxlength="1024")),
                  el("div", el("button", "Approve", type="submit", name="status",
                               value="Approved"),
                     el("button", "Reject", type="submit", name="status", value="Rejected",
                        class_="danger", data_confirm="Reject this version?"),
                     class_="buttons"),
                  method="post", action="/console/models/approval", class_="stack approval")
    body = el("section",
              breadcrumbs(("/console/models", "Model registry"),
                          (group_url(group), group) if group else ("", "Packages"),
                          ("", f"Version {version}")),
              heading(title),
              definition_list([
                  ("Approval", status(package.get("ModelApprovalStatus"))),
                  ("Approval comment", package.get("ApprovalDescription")),
                  ("Package status", package.get("ModelPackageStatus")),
                  ("Description", package.get("ModelPackageDescription")),
                  ("Created", when(package.get("CreationTime"))),
                  ("ARN", arn)]),
              el("h2", "Approve or reject"), approval,
              el("h2", "Evaluation"), _metrics(view, package.get("ModelMetrics") or {}),
              el("h2", "Lineage"), _lineage(view, containers),
              el("h2", "Containers"),
              table(["Image", "Model data"], [[c.get("Image"), s3_link(c.get("ModelDataUrl"))]
                                              for c in containers], empty="None."))
    return title, body


def _metrics(view: View, metrics: dict[str, Any]) -> Safe:
    reports = []
    for section, entries in metrics.items():
        for entry_name, entry in (entries or {}).items():
            if isinstance(entry, dict) and entry.get("S3Uri"):
                reports.append((f"{section} · {entry_name}", entry["S3Uri"]))
    if not reports:
        return el("p", "No ModelMetrics registered.", class_="empty")
    parts = []
    for label, uri in reports:
        parts.append(el("h3", label, " ", s3_link(uri)))
        document = read_json_object(view, MAX_REPORT_BYTES, uri)
        if document is None:
            parts.append(el("p", "The report could not be read as JSON.", class_="empty"))
            continue
        scalars = list(_scalars(document))
        if scalars:
            parts.append(table(["Metric", "Value"], scalars, class_="metrics"))
        parts.append(el("details", el("summary", "The whole report"),
                        el("pre", json.dumps(document, indent=2, sort_keys=True),
                           class_="log")))
    return el("div", *parts, id="evaluation")


def _scalars(document: Any, prefix: str = "") -> Any:
    """Numbers in the report by dotted path ({"metrics": {"accuracy": {"value": 0.9}}}
    gives metrics.accuracy), at most 60."""
    found = 0
    stack = [(prefix, document)]
    while stack and found < 60:
        path, value = stack.pop(0)
        if isinstance(value, dict):
            if set(value) >= {"value"} and isinstance(value["value"], (int, float)):
                found += 1
                yield [path, value["value"]]
                continue
            stack.extend((f"{path}.{key}" if path else str(key), item)
                         for key, item in value.items())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found += 1
            yield [path, value]



def _lineage(view: View, containers: list[dict[str, Any]]) -> Safe:
    """The training job whose artifacts a container serves (``<job>/output/model.tar.gz``)."""
    items = []
    for container in containers:
        data_url = container.get("ModelDataUrl") or ""
        parts = data_url.split("/")
        if len(parts) >= 3 and parts[-2] == "output":
            job = parts[-3]
            try:
                found = view.call("sagemaker", "DescribeTrainingJob", {"TrainingJobName": job})
            except AwsError:
                continue
            if (found.get("ModelArtifacts") or {}).get("S3ModelArtifacts") == data_url:
                items.append(el("li", "Trained by ",
                                link(f"/console/jobs/training/{seg(job)}", job), " ",
                                status(found.get("TrainingJobStatus"))))
    if not items:
        return el("p", "No training job found for this version's model data.", class_="empty")
    return el("ul", *items, id="lineage")


def approve(view: View, form: dict[str, str]) -> str:
    wanted = form.get("status", "")
    if wanted not in ("Approved", "Rejected", "PendingManualApproval"):
        raise AwsError("ValidationException", "Approve or reject: nothing else.")
    request: dict[str, Any] = {"ModelPackageArn": form.get("arn", ""),
                               "ModelApprovalStatus": wanted}
    if form.get("comment"):
        request["ApprovalDescription"] = form["comment"]
    view.call("sagemaker", "UpdateModelPackage", request)
    return done(package_url(form.get("arn", "")), f"Model package {wanted.lower()}.")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/models"
    return [
        Route("/console/models", page(platform, list_groups, active), methods=["GET"]),
        Route("/console/models/package", page(platform, show_package, active), methods=["GET"]),
        Route("/console/models/approval", action(platform, approve), methods=["POST"]),
        Route("/console/models/{group}", page(platform, show_group, active), methods=["GET"]),
    ]
