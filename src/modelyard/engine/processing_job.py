"""A processing job from start to end: inputs in, the user's container command, outputs out."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from ..store.logs import LogStore
from .cgroups import job_memory_cgroup
from .channels import JobDataError, download_input, upload_directory
from .executor import JobHandle
from .job_process import LogSink, job_environment, supervise
from .job_records import failure_reason, update_job
from .sandbox import Sandbox, SandboxUnavailable, start_in_sandbox

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.processing")

KIND = "ProcessingJob"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def run_processing_job(platform: "Platform", name: str, handle: JobHandle) -> None:
    resource = platform.resources.get(KIND, name)
    if resource is None or resource.document["ProcessingJobStatus"] != "InProgress":
        return
    job = resource.document
    if handle.stop_requested.is_set():
        _finish(platform, name, "Stopped")
        return
    sandbox = Sandbox(platform.settings.data_dir / "jobs" / "processing" / name)
    try:
        _run(platform, name, job, handle, sandbox)
    except JobDataError as error:
        _finish(platform, name, "Failed", FailureReason=f"ClientError: {error}")
    except SandboxUnavailable as error:
        _finish(platform, name, "Failed", FailureReason=f"InternalServerError: {error}")
    finally:
        sandbox.remove()


def _run(platform: "Platform", name: str, job: dict, handle: JobHandle, sandbox: Sandbox) -> None:
    now = platform.clock.now()
    update_job(platform, KIND, name, lambda doc: doc.update(ProcessingStartTime=now),
               status_field="ProcessingJobStatus")
    inputs = job.get("ProcessingInputs", [])
    outputs = job.get("ProcessingOutputConfig", {}).get("Outputs", [])
    sandbox.create(["config", "output"]
                   + [item["S3Input"]["LocalPath"] for item in inputs]
                   + [item["S3Output"]["LocalPath"] for item in outputs])
    _write_configs(sandbox, job)
    for item in inputs:
        source = item["S3Input"]
        download_input(platform.objects, source["S3Uri"], source["S3DataType"],
                       sandbox.host_path(source["LocalPath"]))
    if handle.stop_requested.is_set():
        _finish(platform, name, "Stopped")
        return

    app = job["AppSpecification"]
    argv = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
    if not app.get("ContainerEntrypoint") and _is_analyzer(app["ImageUri"]):
        argv = [sys.executable, "-m", "modelyard.monitor.analyzer", *argv]
    sink = LogSink(LogStore.for_database(platform.db), LOG_GROUP,
                   f"{name}/algo-1-{int(time.time())}")
    instance_type = job["ProcessingResources"]["ClusterConfig"]["InstanceType"]
    env = job_environment(platform.settings, instance_type,
                          {"PROCESSING_JOB_NAME": name, **job.get("Environment", {})})
    with job_memory_cgroup(platform.settings, instance_type, name, sink.write) as memory:
        process = start_in_sandbox(sandbox, platform.settings.data_dir, "/", argv, env,
                                   cgroup_procs=memory.procs_file if memory else None)
        outcome = supervise(process, handle, sink, memory=memory,
                            max_seconds=job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"))

    # SageMaker uploads outputs when the job ends, also after a failure or a stop.
    for item in outputs:
        target = item["S3Output"]
        upload_directory(platform.objects, sandbox.host_path(target["LocalPath"]),
                         target["S3Uri"], now=platform.clock.now())
    if outcome.reason == "stopped":
        _finish(platform, name, "Stopped")
    elif outcome.reason == "timeout":
        _finish(platform, name, "Failed", FailureReason=(
            "ProcessingJob exceeded its MaxRuntimeInSeconds of "
            f"{job['StoppingCondition']['MaxRuntimeInSeconds']} seconds and was stopped."))
    elif outcome.returncode == 0:
        _finish(platform, name, "Completed", **_exit_message(sandbox))
    else:
        failure_file = sandbox.host_path("output/failure")
        text = failure_file.read_text(errors="replace") if failure_file.exists() else None
        reason = outcome.out_of_memory or failure_reason(text, sink.tail(), outcome.returncode)
        _finish(platform, name, "Failed", FailureReason=reason, ExitMessage=reason)


def _is_analyzer(image_uri: str) -> bool:
    """Whether the image is the Model Monitor analyzer (run as modelyard's analyzer)."""
    from .images import MODEL_MONITOR, processing_image

    return processing_image(image_uri, "AppSpecification.ImageUri").framework == MODEL_MONITOR


def _exit_message(sandbox: Sandbox) -> dict[str, str]:
    """The container's termination message (/opt/ml/output/message) as ExitMessage, e.g.
    the analyzer's "CompletedWithViolations: Job completed successfully with 3 violations."."""
    message_file = sandbox.host_path("output/message")
    if not message_file.is_file():
        return {}
    text = message_file.read_text(errors="replace").strip()
    return {"ExitMessage": text[:1024]} if text else {}


def _write_configs(sandbox: Sandbox, job: dict) -> None:
    config = sandbox.host_path("config")
    instance_type = job["ProcessingResources"]["ClusterConfig"]["InstanceType"]
    public_job = {key: value for key, value in job.items() if not key.startswith("_")}
    (config / "processingjobconfig.json").write_text(json.dumps(public_job, default=str))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": instance_type,
        "network_interface_name": "eth0",
    }))


def _finish(platform: "Platform", name: str, status: str, **fields: Any) -> None:
    now = platform.clock.now()

    def change(document: dict) -> None:
        document["ProcessingJobStatus"] = status
        document.setdefault("ProcessingStartTime", now)
        document["ProcessingEndTime"] = now
        document.update(fields)

    update_job(platform, KIND, name, change, status_field="ProcessingJobStatus")
    log.info("processing job %s %s", name, status)


def recover_processing_job(platform: "Platform", name: str, status: str) -> bool:
    if status == "Stopping":
        _finish(platform, name, "Stopped")
        return False
    return True
