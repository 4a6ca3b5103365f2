"""A training job from start to end: data in, the runtime in its sandbox, artifacts out."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..store.logs import LogStore
from ..store.metrics import MetricStore
from . import framework_envs
from .cgroups import job_memory_cgroup
from .channels import (
    JobDataError, S3Location, directory_has_files, download_input, extract_tarball,
    sync_down, upload_directory,
)
from .executor import JobHandle
from .images import parse_image, training_runtime
from .job_process import LogSink, job_environment, regex_extractor, supervise
from .job_records import add_transition, failure_reason, update_job
from .model_tarball import store_directory_tarball
from .runtime_metrics import builtin_extractors
from .sandbox import Sandbox, SandboxUnavailable
from .warm_start import start_warm, warm_up

if TYPE_CHECKING:
    from pathlib import Path

    from ..platform import Platform

log = logging.getLogger("modelyard.training")

KIND = "TrainingJob"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SANDBOX_DIRECTORIES = [
    "input/config", "input/data", "model", "output/data", "output/intermediate",
    "checkpoints", "code",
]


def run_training_job(platform: "Platform", name: str, handle: JobHandle) -> None:
    resource = platform.resources.get(KIND, name)
    if resource is None or resource.document["TrainingJobStatus"] != "InProgress":
        return
    job = resource.document
    if handle.stop_requested.is_set():
        _finish(platform, name, "Stopped", "Stopped", "Training job stopped before it started")
        return
    sandbox = Sandbox(platform.settings.data_dir / "jobs" / "training" / name)
    try:
        _run(platform, name, job, handle, sandbox)
    except JobDataError as error:
        _finish(platform, name, "Failed", "Failed", "Training job failed",
                FailureReason=f"ClientError: {error}")
    except SandboxUnavailable as error:
        _finish(platform, name, "Failed", "Failed", "Training job failed",
                FailureReason=f"InternalServerError: {error}")
    finally:
        sandbox.remove()


def _run(platform: "Platform", name: str, job: dict, handle: JobHandle, sandbox: Sandbox) -> None:
    objects = platform.objects
    started = platform.clock.now()
    hyperparameters = job.get("HyperParameters", {})
    image = parse_image(job["AlgorithmSpecification"]["TrainingImage"])
    assert image is not None  # checked by CreateTrainingJob
    module, cwd = training_runtime(image, hyperparameters)
    warm_up(image.framework, module)  # a warm start's zygote: its imports overlap the downloads
    _step(platform, name, "Downloading", "Downloading input data", TrainingStartTime=started)
    sandbox.create(SANDBOX_DIRECTORIES)
    _write_configs(sandbox, job)
    for channel in job.get("InputDataConfig", []):
        source = channel["DataSource"]["S3DataSource"]
        download_input(objects, source["S3Uri"], source["S3DataType"],
                       sandbox.host_path(f"input/data/{channel['ChannelName']}"))
    checkpoints = job.get("CheckpointConfig")
    if checkpoints:
        sync_down(objects, checkpoints["S3Uri"], sandbox.host_path("checkpoints"))
    if "sagemaker_submit_directory" in hyperparameters:
        _stage_source(platform, hyperparameters["sagemaker_submit_directory"], sandbox)
    if handle.stop_requested.is_set():
        _finish(platform, name, "Stopped", "Stopped", "Training job stopped")
        return

    _step(platform, name, "Training", "Training image download completed. Training in progress.")
    sink = LogSink(
        LogStore.for_database(platform.db), LOG_GROUP, f"{name}/algo-1-{int(time.time())}",
        extractors=[regex_extractor(job["AlgorithmSpecification"].get("MetricDefinitions", [])),
                    *builtin_extractors(image.framework, module)],
    )
    metrics = MetricStore(platform.db)

    def on_metrics(points: list[tuple[str, float, float]]) -> None:
        metrics.append(name, points)
        # CloudWatch too, as SageMaker publishes them (/aws/sagemaker/TrainingJobs).
        from ..cloudwatch.metrics import publish_training_metrics
        publish_training_metrics(platform, name, points)

    sink.on_metrics = on_metrics
    instance_type = job["ResourceConfig"]["InstanceType"]
    env = job_environment(platform.settings, instance_type, {
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": job["TrainingJobArn"],
        **job.get("Environment", {}),
    })
    # Script mode runs on the framework version's libraries (built on first use, logged).
    runner = framework_envs.runner_for(image, module, sandbox.tmp, env,
                                       lambda line: (sink.write(line), sink.flush()))
    with job_memory_cgroup(platform.settings, instance_type, name, sink.write) as memory:
        process = start_warm(sandbox, platform.settings.data_dir, cwd, runner.argv,
                             {**env, **runner.env}, framework=image.framework,
                             cgroup_procs=memory.procs_file if memory else None)
        outcome = supervise(process, handle, sink, memory=memory,
                            max_seconds=job["StoppingCondition"].get("MaxRuntimeInSeconds"))

    _step(platform, name, "Uploading", "Uploading generated training model")
    artifacts = _upload_artifacts(platform, name, job, sandbox)
    billable = max(1, int(round(outcome.seconds)))
    fields: dict[str, Any] = {
        "FinalMetricDataList": [
            {"MetricName": metric, "Value": value, "Timestamp": stamp}
            for metric, (value, stamp) in sorted(sink.final_metrics.items())
        ],
        "TrainingTimeInSeconds": billable,
        "BillableTimeInSeconds": billable,
        **artifacts,
    }
    if outcome.reason == "stopped":
        _finish(platform, name, "Stopped", "Stopped", "Training job stopped", **fields)
    elif outcome.reason == "timeout":
        _finish(platform, name, "Stopped", "MaxRuntimeExceeded",
                "Job stopped because it exceeded the maximum allowed runtime of "
                f"{job['StoppingCondition']['MaxRuntimeInSeconds']} seconds", **fields)
    elif outcome.returncode == 0:
        _finish(platform, name, "Completed", "Completed", "Training job completed", **fields)
    else:
        failure_file = sandbox.host_path("output/failure")
        text = failure_file.read_text(errors="replace") if failure_file.exists() else None
        _finish(platform, name, "Failed", "Failed", "Training job failed",
                FailureReason=outcome.out_of_memory
                or failure_reason(text, sink.tail(), outcome.returncode), **fields)


def _upload_artifacts(platform: "Platform", name: str, job: dict, sandbox: Sandbox) -> dict:
    objects, now = platform.objects, platform.clock.now()
    output = S3Location.parse(job["OutputDataConfig"]["S3OutputPath"]).child(name, "output")
    fields: dict[str, Any] = {}
    # Each tarball is written once, straight into the store (see model_tarball.py).
    model = output.child("model.tar.gz")
    _store_tarball(platform, sandbox.host_path("model"), model, now)
    fields["ModelArtifacts"] = {"S3ModelArtifacts": model.uri}
    data_dir = sandbox.host_path("output/data")
    if directory_has_files(data_dir):
        _store_tarball(platform, data_dir, output.child("output.tar.gz"), now)
    checkpoints = job.get("CheckpointConfig")
    if checkpoints and directory_has_files(sandbox.host_path("checkpoints")):
        upload_directory(objects, sandbox.host_path("checkpoints"), checkpoints["S3Uri"], now=now)
    return fields


def _store_tarball(platform: "Platform", directory: "Path", target: S3Location, now: float) -> None:
    """Pack ``directory`` into ``target``; JobDataError (the job fails) if it cannot be written."""
    try:
        store_directory_tarball(platform.objects, directory, target.bucket, target.key, now=now)
    except AwsError as error:
        raise JobDataError(f"Cannot write {target.uri}: {error.message}") from None


def _stage_source(platform: "Platform", uri: str, sandbox: Sandbox) -> None:
    """Script mode: unpack the user's source tarball into /opt/ml/code, as the toolkit does."""
    uri = json.loads(uri) if uri.startswith('"') else uri
    if not uri.startswith("s3://"):
        # A path in the container, e.g. network isolation's code channel
        # (/opt/ml/input/data/code/sourcedir.tar.gz): the runner unpacks it, as the toolkit does.
        return
    location = S3Location.parse(uri)
    tarball = sandbox.root / "sourcedir.tar.gz"
    try:
        platform.objects.fetch_to_path(location.bucket, location.key, tarball, link=False)
    except AwsError as error:
        raise JobDataError(f"Cannot read the training source {uri}: {error.message}") from None
    try:
        extract_tarball(tarball, sandbox.host_path("code"))
    except Exception as error:  # noqa: BLE001 - any archive problem is the user's data
        raise JobDataError(f"Cannot unpack {uri}: {error}") from None


def _write_configs(sandbox: Sandbox, job: dict) -> None:
    config = sandbox.host_path("input/config")
    channels = {
        channel["ChannelName"]: {
            "ContentType": channel.get("ContentType", ""),
            "TrainingInputMode": channel.get("InputMode")
            or job["AlgorithmSpecification"].get("TrainingInputMode", "File"),
            "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                "S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        for channel in job.get("InputDataConfig", [])
    }
    instance_type = job["ResourceConfig"]["InstanceType"]
    resources = {
        "current_host": "algo-1",
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"],
        "instance_groups": [{"instance_group_name": "homogeneousCluster",
                             "instance_type": instance_type, "hosts": ["algo-1"]}],
        "network_interface_name": "eth0",
    }
    public_job = {key: value for key, value in job.items() if not key.startswith("_")}
    for filename, content in (
        ("hyperparameters.json", job.get("HyperParameters", {})),
        ("inputdataconfig.json", channels),
        ("resourceconfig.json", resources),
        ("trainingjobconfig.json", public_job),
    ):
        (config / filename).write_text(json.dumps(content, default=str))


def _step(platform: "Platform", name: str, secondary: str, message: str, **fields: Any) -> None:
    now = platform.clock.now()

    def change(document: dict) -> None:
        add_transition(document, secondary, message, now)
        document.update(fields)

    update_job(platform, KIND, name, change, status_field="TrainingJobStatus")


def _finish(platform: "Platform", name: str, status: str, secondary: str, message: str,
            **fields: Any) -> None:
    now = platform.clock.now()

    def change(document: dict) -> None:
        add_transition(document, secondary, message, now)
        document["TrainingJobStatus"] = status
        document.setdefault("TrainingStartTime", now)
        document["TrainingEndTime"] = now
        document.update(fields)

    update_job(platform, KIND, name, change, status_field="TrainingJobStatus")
    log.info("training job %s %s", name, status)


def recover_training_job(platform: "Platform", name: str, status: str) -> bool:
    """After a restart: finish a stop that was under way; run an interrupted job again."""
    if status == "Stopping":
        _finish(platform, name, "Stopped", "Stopped",
                "Training job stopped (the modelyard server restarted while it was stopping)")
        return False
    _step(platform, name, "Starting",
          "The modelyard server restarted while the job ran; starting it again")
    return True
