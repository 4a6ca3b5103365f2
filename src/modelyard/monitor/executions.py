"""Monitoring executions: one processing job per due window, created as SageMaker does.

An execution is a resource (kind ``monitoring-execution``, parent = the schedule's name in
lower case) whose document is its MonitoringExecutionSummary plus private members (``_``).
Its life: ``Pending`` when the scheduler records it, then ``start`` resolves the window's
captured data and creates the processing job through ``dispatch.call`` (the job is named
``model-monitoring-<yyyymmddHHMM>-<8 hex>``, reads each captured hour prefix of the window
under ``/opt/ml/processing/input/endpoint/<endpoint>/<variant>/yyyy/mm/dd/hh``, the baseline
files under ``/opt/ml/processing/baseline/{stats,constraints}`` (a BatchTransformInput
instead mounts the objects named by each capture manifest of the window, see
``_batch_inputs``), and writes to
``<S3Output>/<endpoint>/<schedule>/yyyy/mm/dd/hh`` of the scheduled hour), so it turns
``InProgress``; ``sync`` then follows the job: ``Completed``, ``CompletedWithViolations``
(the job completed with an ExitMessage starting so), ``Failed`` with the job's reason, or
``Stopped``. A window without captured data fails without a job, with SageMaker's reason
"Job inputs had no data".
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.processing_job import KIND as PROCESSING_KIND
from .schedules import EXECUTION_KIND, HOUR, JobSpec

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

log = logging.getLogger("modelyard.monitor")

OPEN_STATUSES = ("Pending", "InProgress", "Stopping")
NO_DATA = "Job inputs had no data"
ENDPOINT_ROOT = "/opt/ml/processing/input/endpoint"
BATCH_ROOT = "/opt/ml/processing/input/batch"
GROUND_TRUTH_ROOT = "/opt/ml/processing/groundtruth"
STATS_ROOT = "/opt/ml/processing/baseline/stats"
CONSTRAINTS_ROOT = "/opt/ml/processing/baseline/constraints"
PREPROCESSOR_ROOT = "/opt/ml/processing/code/preprocessing"
POSTPROCESSOR_ROOT = "/opt/ml/processing/code/postprocessing"
DEFAULT_OUTPUT_PATH = "/opt/ml/processing/output"
CAPTURE_FORMAT = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput",
                                                                  "endpointOutput"]}}
_SUMMARY = ("MonitoringScheduleName", "ScheduledTime", "CreationTime", "LastModifiedTime",
            "MonitoringExecutionStatus", "ProcessingJobArn", "EndpointName", "FailureReason",
            "MonitoringJobDefinitionName", "MonitoringType")


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def summary(document: dict[str, Any]) -> dict[str, Any]:
    """The MonitoringExecutionSummary members of an execution's document."""
    return {key: document[key] for key in _SUMMARY if document.get(key) is not None}


def record(platform: "Platform", schedule: "Resource", spec: JobSpec, scheduled: float,
           window: tuple[float, float]) -> "Resource | None":
    """Record the Pending execution of ``schedule`` for ``scheduled``; None if it exists."""
    name = f"{schedule.name.lower()}@{schedule.creation_time:.0f}@{scheduled:.0f}"
    now = platform.clock.now()
    document = {
        "MonitoringScheduleName": schedule.name, "ScheduledTime": scheduled,
        "CreationTime": now, "LastModifiedTime": now, "MonitoringExecutionStatus": "Pending",
        "EndpointName": spec.endpoint_name, "MonitoringJobDefinitionName": spec.definition_name,
        "MonitoringType": spec.monitoring_type, "_window": list(window),
        "_schedule_created": schedule.creation_time,
        "_job_name": f"model-monitoring-{time.strftime('%Y%m%d%H%M', time.gmtime(scheduled))}"
                     f"-{uuid.uuid4().hex[:8]}",
    }
    arn = platform.settings.arn("sagemaker", f"monitoring-execution/{uuid.uuid4().hex}")
    try:
        # The row's creation_time is the ScheduledTime: executions list in schedule order.
        return platform.resources.create(EXECUTION_KIND, name, arn, document, now=scheduled,
                                         status="Pending", parent=schedule.name.lower())
    except AwsError:
        return None


def update(platform: "Platform", name: str, **changes: Any) -> "Resource":
    """Change an execution's document (and its indexed status)."""
    now = platform.clock.now()

    def change(current: "Resource") -> dict[str, Any]:
        document = {**current.document, **changes, "LastModifiedTime": now}
        document["__status__"] = document["MonitoringExecutionStatus"]
        return document

    return platform.resources.update(EXECUTION_KIND, name, change, now=now,
                                     missing=lambda: AwsError("ResourceNotFound", name))


def start(platform: "Platform", execution: "Resource", spec: JobSpec) -> "Resource":
    """Create the execution's processing job, or fail the execution with a reason."""
    from .. import dispatch

    document = execution.document
    job_name = document["_job_name"]
    if platform.resources.get(PROCESSING_KIND, job_name) is None:
        try:
            request = processing_request(platform, spec, document)
        except MonitoringInputError as error:
            return update(platform, execution.name, MonitoringExecutionStatus="Failed",
                        FailureReason=str(error))
        try:
            dispatch.call(platform, "sagemaker", "CreateProcessingJob", request)
        except AwsError as error:
            return update(platform, execution.name, MonitoringExecutionStatus="Failed",
                        FailureReason=f"{error.code}: {error.message}")
    arn = platform.settings.arn("sagemaker", f"processing-job/{job_name.lower()}")
    return update(platform, execution.name, MonitoringExecutionStatus="InProgress",
                ProcessingJobArn=arn)


def sync(platform: "Platform", execution: "Resource") -> "Resource | None":
    """Follow the execution's processing job; the updated execution when it changed."""
    job = platform.resources.get(PROCESSING_KIND, execution.document["_job_name"])
    if job is None:
        return None
    status = job.document.get("ProcessingJobStatus")
    changes: dict[str, Any] = {}
    if status == "Completed":
        exit_message = str(job.document.get("ExitMessage") or "")
        changes["MonitoringExecutionStatus"] = (
            "CompletedWithViolations" if exit_message.startswith("CompletedWithViolations")
            else "Completed")
    elif status == "Failed":
        changes = {"MonitoringExecutionStatus": "Failed",
                   "FailureReason": job.document.get("FailureReason") or "The job failed."}
    elif status in ("Stopping", "Stopped"):
        changes["MonitoringExecutionStatus"] = status
    if not changes or changes["MonitoringExecutionStatus"] == \
            execution.document["MonitoringExecutionStatus"]:
        return None
    return update(platform, execution.name, **changes)


class MonitoringInputError(Exception):
    """The execution cannot start; the message is its FailureReason."""


def processing_request(platform: "Platform", spec: JobSpec,
                       execution: dict[str, Any]) -> dict[str, Any]:
    """The CreateProcessingJob request SageMaker makes for this execution."""
    scheduled = float(execution["ScheduledTime"])
    start_time, end_time = (float(t) for t in execution["_window"])
    schedule_name = execution["MonitoringScheduleName"]
    output = spec.outputs[0]["S3Output"]
    local_output = output.get("LocalPath") or DEFAULT_OUTPUT_PATH
    env: dict[str, str] = {
        "output_path": local_output,
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_monitoring_schedule_name": schedule_name,
        "start_time": iso(start_time), "end_time": iso(end_time),
        "metric_time": iso(start_time),
    }
    inputs: list[dict[str, Any]] = []
    if spec.endpoint_input is not None:
        endpoint = spec.endpoint_input["EndpointName"]
        inputs += _capture_inputs(platform, spec.endpoint_input, endpoint, start_time, end_time)
        env.update(dataset_format=json.dumps(CAPTURE_FORMAT, separators=(",", ":")),
                   dataset_source=ENDPOINT_ROOT, sagemaker_endpoint_name=endpoint,
                   monitoring_input_type="ENDPOINT_INPUT")
        owner, source = endpoint, spec.endpoint_input
    else:
        batch = spec.batch_input or {}
        inputs += _batch_inputs(platform, batch, start_time, end_time,
                                "output" if spec.monitoring_type == "ModelQuality" else "input")
        env.update(dataset_format=json.dumps(_container_format(batch.get("DatasetFormat")),
                                             separators=(",", ":")),
                   dataset_source=BATCH_ROOT, monitoring_input_type="BATCH_TRANSFORM_INPUT")
        owner, source = "batch-transform", batch
    if spec.monitoring_type == "ModelQuality":
        env["analysis_type"] = "MODEL_QUALITY"
        if spec.problem_type:
            env["problem_type"] = spec.problem_type
        for member, variable in (("InferenceAttribute", "inference_attribute"),
                                 ("ProbabilityAttribute", "probability_attribute"),
                                 ("ProbabilityThresholdAttribute",
                                  "probability_threshold_attribute")):
            if source.get(member) is not None:
                env[variable] = str(source[member])
        if spec.ground_truth_uri:
            inputs.append(_input("groundtruth_input_1", spec.ground_truth_uri.rstrip("/"),
                                 GROUND_TRUTH_ROOT))
            env["ground_truth_source"] = GROUND_TRUTH_ROOT
    statistics, constraints = _baseline(platform, spec)
    if statistics:
        _require_object(platform, statistics, "baseline statistics")
        inputs.append(_input("baseline", statistics, STATS_ROOT))
        env["baseline_statistics"] = f"{STATS_ROOT}/{posixpath.basename(statistics)}"
    if constraints:
        _require_object(platform, constraints, "baseline constraints")
        inputs.append(_input("constraints", constraints, CONSTRAINTS_ROOT))
        env["baseline_constraints"] = f"{CONSTRAINTS_ROOT}/{posixpath.basename(constraints)}"
    for uri, root, variable, label in (
            (spec.preprocessor_uri, PREPROCESSOR_ROOT, "record_preprocessor_script",
             "pre_processor_script_input"),
            (spec.postprocessor_uri, POSTPROCESSOR_ROOT, "post_analytics_processor_script",
             "post_processor_script_input")):
        if uri:
            _require_object(platform, uri, variable.replace("_", " "))
            inputs.append(_input(label, uri, root))
            env[variable] = f"{root}/{posixpath.basename(uri)}"
    env.update(spec.environment)  # the user's Environment wins, as in SageMaker
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(scheduled))
    destination = "/".join([output["S3Uri"].rstrip("/"), owner, schedule_name, hour])
    app: dict[str, Any] = {"ImageUri": spec.image_uri}
    if spec.entrypoint:
        app["ContainerEntrypoint"] = spec.entrypoint
    if spec.arguments:
        app["ContainerArguments"] = spec.arguments
    request: dict[str, Any] = {
        "ProcessingJobName": execution["_job_name"],
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
            "S3Uri": destination, "LocalPath": local_output,
            "S3UploadMode": output.get("S3UploadMode", "EndOfJob")}}]},
        "ProcessingResources": {"ClusterConfig": spec.cluster},
        "AppSpecification": app,
        "Environment": env,
        "RoleArn": spec.role_arn,
    }
    if spec.kms_key:
        request["ProcessingOutputConfig"]["KmsKeyId"] = spec.kms_key
    if spec.stopping:
        request["StoppingCondition"] = spec.stopping
    if spec.network:
        request["NetworkConfig"] = spec.network
    return request


def _input(name: str, uri: str, local_path: str, mode: str = "File",
           distribution: str = "FullyReplicated", data_type: str = "S3Prefix") -> dict[str, Any]:
    return {"InputName": name, "AppManaged": False, "S3Input": {
        "S3Uri": uri, "LocalPath": local_path, "S3DataType": data_type, "S3InputMode": mode,
        "S3DataDistributionType": distribution}}


def _hours(start: float, end: float) -> list[str]:
    """The yyyy/mm/dd/hh prefixes of every hour the window touches."""
    first, last = int(start // HOUR), int((end - 1e-6) // HOUR)
    return [time.strftime("%Y/%m/%d/%H", time.gmtime(h * HOUR)) for h in range(first, last + 1)]


def _has_objects(platform: "Platform", uri: str) -> bool:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        page = platform.objects.list_objects(bucket, prefix=key.rstrip("/") + "/", max_keys=1)
    except AwsError:
        return False
    return bool(page.contents)


def _require_object(platform: "Platform", uri: str, label: str) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        platform.objects.get_object_info(bucket, key)
    except AwsError:
        if _has_objects(platform, uri):  # an S3 prefix is as good as an object
            return
        raise MonitoringInputError(
            f"The {label} file {uri} does not exist. Point the schedule's baseline at the "
            "files a baselining job wrote (suggest_baseline), or upload them.") from None


def endpoint_capture(platform: "Platform", endpoint: str) -> tuple[str, list[str]]:
    """(capture destination, variant names) of an endpoint; MonitoringInputError if it
    does not exist or does not capture. Read from its endpoint config, so an endpoint that
    is still Creating can be monitored."""
    from .. import dispatch

    try:
        described = dispatch.call(platform, "sagemaker", "DescribeEndpoint",
                                  {"EndpointName": endpoint})
        config = dispatch.call(platform, "sagemaker", "DescribeEndpointConfig",
                               {"EndpointConfigName": described["EndpointConfigName"]})
    except AwsError:
        raise MonitoringInputError(
            f"Endpoint {endpoint} does not exist; a monitoring schedule watches an existing "
            "endpoint.") from None
    capture = config.get("DataCaptureConfig") or {}
    destination = str(capture.get("DestinationS3Uri") or "").rstrip("/")
    if not capture.get("EnableCapture", True) or not destination:
        raise MonitoringInputError(
            f"Endpoint {endpoint} does not capture data. Deploy it with a DataCaptureConfig "
            "(EnableCapture true and a DestinationS3Uri) before monitoring it.")
    return destination, [v["VariantName"] for v in config.get("ProductionVariants") or []]


def _capture_inputs(platform: "Platform", endpoint_input: dict[str, Any], endpoint: str,
                    start: float, end: float) -> list[dict[str, Any]]:
    destination, variants = endpoint_capture(platform, endpoint)
    inputs = []
    for hour in _hours(start, end):
        for variant in variants:
            uri = f"{destination}/{endpoint}/{variant}/{hour}"
            if _has_objects(platform, uri):
                inputs.append(_input(
                    f"input_{len(inputs) + 1}", uri, f"{ENDPOINT_ROOT}/{endpoint}/{variant}/{hour}",
                    endpoint_input.get("S3InputMode", "File"),
                    endpoint_input.get("S3DataDistributionType", "FullyReplicated")))
    if not inputs:
        raise MonitoringInputError(NO_DATA)
    return inputs


def _batch_inputs(platform: "Platform", batch: dict[str, Any], start: float, end: float,
                  kind: str) -> list[dict[str, Any]]:
    """A transform job's captured data: the manifests its jobs wrote under
    ``<destination>/<kind>/yyyy/mm/dd/hh/`` (engine/transform_capture.py), for each hour
    of the window, each one a ManifestFile input whose objects land under
    ``<BATCH_ROOT>/<kind>/<hour>/<manifest name>/``: the job inputs (features) for data
    quality, its outputs (predictions, with inference ids) for model quality."""
    destination = batch["DataCapturedDestinationS3Uri"].rstrip("/")
    inputs = []
    for hour in _hours(start, end):
        for uri in _manifests(platform, f"{destination}/{kind}/{hour}"):
            stem = posixpath.splitext(posixpath.basename(uri))[0]
            inputs.append(_input(
                f"input_{len(inputs) + 1}", uri, f"{BATCH_ROOT}/{kind}/{hour}/{stem}",
                batch.get("S3InputMode", "File"),
                batch.get("S3DataDistributionType", "FullyReplicated"), "ManifestFile"))
    if not inputs:
        raise MonitoringInputError(NO_DATA)
    return inputs


def _manifests(platform: "Platform", uri: str) -> list[str]:
    """The capture manifests under an hour prefix that name at least one object;
    MonitoringInputError for an object there that is not a manifest."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    found, after = [], None
    while True:
        try:
            page = platform.objects.list_objects(bucket, prefix=prefix.rstrip("/") + "/",
                                                 after=after, max_keys=1000)
        except AwsError:
            return found
        for item in page.contents:
            if item.key.endswith("/"):
                continue
            manifest_uri = f"s3://{bucket}/{item.key}"
            try:
                reader = platform.objects.open_object(bucket, item.key)
                manifest = json.loads(b"".join(reader.iter_chunks()))
                valid = isinstance(manifest, list) and bool(manifest) and \
                    str(manifest[0]["prefix"]).startswith("s3://")
            except (ValueError, KeyError, TypeError, AwsError):
                valid = False
            if not valid:
                raise MonitoringInputError(
                    f"{manifest_uri} is not a batch transform capture manifest (a JSON array "
                    '[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]). Only '
                    "transform jobs with a DataCaptureConfig should write under the "
                    "BatchTransformInput's DataCapturedDestinationS3Uri.")
            if len(manifest) > 1:
                found.append(manifest_uri)
        if not page.is_truncated:
            return found
        after = page.next_marker


def _container_format(dataset_format: dict[str, Any] | None) -> dict[str, Any]:
    """The API's DatasetFormat (Csv/Json/Parquet) as the container's dataset_format."""
    dataset_format = dataset_format or {}
    if "Csv" in dataset_format:
        return {"csv": {"header": bool(dataset_format["Csv"].get("Header", False)),
                        "output_columns_position": "START"}}
    if "Json" in dataset_format:
        return {"json": {"lines": bool(dataset_format["Json"].get("Line", True))}}
    if "Parquet" in dataset_format:
        return {"parquet": {}}
    return {"csv": {"header": False, "output_columns_position": "START"}}


def _baseline(platform: "Platform", spec: JobSpec) -> tuple[str | None, str | None]:
    """The baseline files: given ones, else the named baselining job's outputs."""
    statistics, constraints = spec.statistics_uri, spec.constraints_uri
    if spec.baselining_job and (statistics is None or constraints is None):
        job = platform.resources.get(PROCESSING_KIND, spec.baselining_job)
        outputs = ((job.document.get("ProcessingOutputConfig") or {}).get("Outputs") or []
                   if job else [])
        if not outputs:
            raise MonitoringInputError(
                f"Baselining job {spec.baselining_job} does not exist or has no output.")
        base = outputs[0]["S3Output"]["S3Uri"].rstrip("/")
        if spec.monitoring_type == "DataQuality":
            statistics = statistics or f"{base}/statistics.json"
        constraints = constraints or f"{base}/constraints.json"
    return statistics, constraints


def open_executions(platform: "Platform") -> list["Resource"]:
    """Executions still waiting for or running their job, oldest first."""
    from ..store.resources import ListQuery

    found: list["Resource"] = []
    for status in OPEN_STATUSES:
        page = platform.resources.list(EXECUTION_KIND, ListQuery(
            status_equals=status, descending=False, max_results=1000))
        found += page.items
    return sorted(found, key=lambda item: item.creation_time)
