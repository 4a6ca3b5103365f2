"""Status changes of job resources, written as SageMaker's Describe responses show them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.errors import validation_error

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

TERMINAL = ("Completed", "Failed", "Stopped")


def update_job(
    platform: "Platform", kind: str, name: str, change: Callable[[dict[str, Any]], None],
    *, status_field: str,
) -> dict[str, Any]:
    """Apply ``change`` to a copy of the job's document; keep the indexed status in step."""
    now = platform.clock.now()

    def apply(resource: "Resource") -> dict[str, Any]:
        document = dict(resource.document)
        change(document)
        document["LastModifiedTime"] = now
        document["__status__"] = document[status_field]
        return document

    updated = platform.resources.update(
        kind, name, apply, now=now,
        missing=lambda: validation_error(f"{kind} {name} no longer exists."),
    )
    return updated.document


def add_transition(document: dict[str, Any], status: str, message: str, now: float) -> None:
    """Append a SecondaryStatusTransitions entry, closing the previous one."""
    transitions = [dict(item) for item in document.get("SecondaryStatusTransitions", [])]
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    entry: dict[str, Any] = {"Status": status, "StartTime": now, "StatusMessage": message}
    if status in TERMINAL or status in ("MaxRuntimeExceeded",):
        entry["EndTime"] = now
    transitions.append(entry)
    document["SecondaryStatusTransitions"] = transitions
    document["SecondaryStatus"] = status


def failure_reason(failure_file_text: str | None, tail: list[str], returncode: int | None) -> str:
    """SageMaker's FailureReason: the failure file if the job wrote one, else its last error."""
    if failure_file_text and failure_file_text.strip():
        text = failure_file_text.strip()
        if not text.startswith(("AlgorithmError", "ClientError")):
            text = "AlgorithmError: " + text
        return _shorten(text)
    errors = [line for line in tail if "error" in line.lower() or "exception" in line.lower()]
    last = (errors or tail or ["(no output)"])[-1].strip()
    return _shorten(f"AlgorithmError: {last}, exit code: {returncode}")


def _shorten(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail_unfinished(platform: "Platform", kind: str, name: str, reason: str) -> None:
    """Mark a job Failed with ``reason`` unless it already ended (its runner crashed).

    ``kind`` is the resource kind ("TrainingJob", ...): its status field is
    ``<kind>Status`` and its end time ``<Training|Processing|Transform>EndTime``.
    """
    status_field, end_field = f"{kind}Status", f"{kind.removesuffix('Job')}EndTime"
    now = platform.clock.now()

    def change(document: dict[str, Any]) -> None:
        if document.get(status_field) not in ("InProgress", "Stopping"):
            return
        document[status_field] = "Failed"
        document[end_field] = now
        document["FailureReason"] = reason
        if "SecondaryStatus" in document:
            add_transition(document, "Failed", reason, now)
            document["SecondaryStatus"] = "Failed"

    update_job(platform, kind, name, change, status_field=status_field)
