"""Monitoring schedules: the expressions SageMaker accepts and the job each execution runs.

Model Monitor accepts far fewer schedule expressions than EventBridge (UTC, whole hours):

* ``cron(0 * ? * * *)`` every hour;
* ``cron(0 H ? * * *)`` daily at hour H (0-23);
* ``cron(0 H/N ? * * *)`` every N hours (1-24) starting at hour H;
* ``NOW``: one execution, right away, which needs ``DataAnalysisStartTime`` and
  ``DataAnalysisEndTime``.

``DataAnalysisStartTime`` / ``DataAnalysisEndTime`` (and a model-quality input's
``StartTimeOffset`` / ``EndTimeOffset``) are negative ISO 8601 durations such as ``-PT1H``
or ``-P1DT2H``, counted from the execution's scheduled time; the window may span at most
24 hours. Without them an execution analyses the hour before its scheduled time.

A schedule refers to its job either by name (``MonitoringJobDefinitionName`` and
``MonitoringType``) or inline (``MonitoringJobDefinition``); ``job_spec`` reads both into
one ``JobSpec``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.errors import validation_error

if TYPE_CHECKING:
    from ..platform import Platform

SCHEDULE_KIND = "monitoring-schedule"
EXECUTION_KIND = "monitoring-execution"
DEFINITION_KINDS = {
    "DataQuality": "data-quality-job-definition",
    "ModelQuality": "model-quality-job-definition",
}
NOW = "NOW"
HOUR = 3600.0
MAX_WINDOW_SECONDS = 24 * HOUR

_CRON = re.compile(r"^cron\(\s*0\s+(\*|\d{1,2}|\d{1,2}/\d{1,2})\s+\?\s+\*\s+\*\s+\*\s*\)$")
_DURATION = re.compile(
    r"^(?P<sign>[-+]?)P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?$")
_SUPPORTED = ("Model Monitor accepts cron(0 * ? * * *) (hourly), cron(0 H ? * * *) (daily at "
              "hour H, 0-23, UTC), cron(0 H/N ? * * *) (every N hours, 1-24, from hour H), or "
              "NOW (one execution right away, with DataAnalysisStartTime and "
              "DataAnalysisEndTime).")


@dataclass(frozen=True)
class HourlyCron:
    """A parsed Model Monitor cron expression: the UTC hours it fires at, minute 0."""

    expression: str
    hours: frozenset[int]

    def next_after(self, after: float) -> float:
        """The first firing time strictly after ``after`` (epoch seconds)."""
        moment = (int(after // HOUR) + 1) * HOUR
        for _ in range(48):
            if int(moment // HOUR) % 24 in self.hours:
                return moment
            moment += HOUR
        raise AssertionError("a Model Monitor cron fires at least once a day")

    def latest_at_or_before(self, now: float) -> float:
        """The most recent firing time at or before ``now``."""
        moment = int(now // HOUR) * HOUR
        while int(moment // HOUR) % 24 not in self.hours:
            moment -= HOUR
        return moment


def parse_expression(text: str) -> HourlyCron | None:
    """None for ``NOW``; a ValidationException for what SageMaker would refuse."""
    text = text.strip()
    if text == NOW:
        return None
    match = _CRON.match(text)
    if not match:
        raise validation_error(f"ScheduleExpression {text!r} is not supported. {_SUPPORTED}")
    hours_field = match.group(1)
    if hours_field == "*":
        return HourlyCron(text, frozenset(range(24)))
    start, _, step = hours_field.partition("/")
    first = int(start)
    every = int(step) if step else 24
    if not 0 <= first <= 23 or not 1 <= every <= 24:
        raise validation_error(
            f"ScheduleExpression {text!r} is not supported: the hour must be 0-23 and the "
            f"interval 1-24. {_SUPPORTED}")
    return HourlyCron(text, frozenset(range(first, 24, every)))


def parse_offset(text: str, member: str) -> float:
    """A negative (or zero) ISO 8601 duration such as ``-PT1H`` in seconds."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "-P", "+P") or text.strip().endswith("T"):
        raise validation_error(
            f"{member} {text!r} is not an ISO 8601 duration; write an offset from the "
            "scheduled time such as -PT1H, -PT30M or -P1D.")
    seconds = (int(match.group("days") or 0) * 86400 + int(match.group("hours") or 0) * 3600
               + int(match.group("minutes") or 0) * 60 + int(match.group("seconds") or 0))
    if match.group("sign") != "-" and seconds:
        raise validation_error(
            f"{member} {text!r} must be a negative offset (the window lies before the "
            "execution's scheduled time), e.g. -PT1H.")
    return -float(seconds)


def check_window(start: str | None, end: str | None, start_member: str,
                 end_member: str) -> tuple[float, float] | None:
    """The (start, end) offsets in seconds, or None when neither is given."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise validation_error(f"{start_member} and {end_member} must be given together.")
    begin, finish = parse_offset(start, start_member), parse_offset(end, end_member)
    if finish <= begin:
        raise validation_error(
            f"{end_member} {end!r} must come after {start_member} {start!r}.")
    if finish - begin > MAX_WINDOW_SECONDS:
        raise validation_error(
            f"{end_member} {end!r} must not follow {start_member} {start!r} by more than 24 "
            "hours.")
    return begin, finish


def check_schedule_config(schedule: dict[str, Any] | None) -> None:
    """Validate a MonitoringScheduleConfig's ScheduleConfig as SageMaker does."""
    if not schedule:
        return
    expression = schedule["ScheduleExpression"]
    parse_expression(expression)
    window = check_window(schedule.get("DataAnalysisStartTime"),
                          schedule.get("DataAnalysisEndTime"),
                          "ScheduleConfig.DataAnalysisStartTime",
                          "ScheduleConfig.DataAnalysisEndTime")
    if expression.strip() == NOW and window is None:
        raise validation_error(
            "A one-time (NOW) monitoring schedule needs ScheduleConfig.DataAnalysisStartTime "
            "and DataAnalysisEndTime, e.g. -PT1H and -PT0H.")


@dataclass
class JobSpec:
    """What every execution of a schedule runs, whichever way the schedule names it."""

    monitoring_type: str
    definition_name: str | None
    image_uri: str
    role_arn: str
    cluster: dict[str, Any]
    outputs: list[dict[str, Any]]
    endpoint_input: dict[str, Any] | None = None
    batch_input: dict[str, Any] | None = None
    ground_truth_uri: str | None = None
    entrypoint: list[str] | None = None
    arguments: list[str] | None = None
    preprocessor_uri: str | None = None
    postprocessor_uri: str | None = None
    problem_type: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    statistics_uri: str | None = None
    constraints_uri: str | None = None
    baselining_job: str | None = None
    kms_key: str | None = None
    stopping: dict[str, Any] | None = None
    network: dict[str, Any] | None = None

    @property
    def endpoint_name(self) -> str | None:
        return (self.endpoint_input or {}).get("EndpointName")


def spec_from_definition(monitoring_type: str, name: str, doc: dict[str, Any]) -> JobSpec:
    """A JobSpec from a Data/ModelQualityJobDefinition document."""
    app = doc[f"{monitoring_type}AppSpecification"]
    job_input = doc[f"{monitoring_type}JobInput"]
    baseline = doc.get(f"{monitoring_type}BaselineConfig") or {}
    output = doc[f"{monitoring_type}JobOutputConfig"]
    return JobSpec(
        monitoring_type=monitoring_type, definition_name=name, image_uri=app["ImageUri"],
        role_arn=doc["RoleArn"], cluster=doc["JobResources"]["ClusterConfig"],
        outputs=output["MonitoringOutputs"], endpoint_input=job_input.get("EndpointInput"),
        batch_input=job_input.get("BatchTransformInput"),
        ground_truth_uri=(job_input.get("GroundTruthS3Input") or {}).get("S3Uri"),
        entrypoint=app.get("ContainerEntrypoint"), arguments=app.get("ContainerArguments"),
        preprocessor_uri=app.get("RecordPreprocessorSourceUri"),
        postprocessor_uri=app.get("PostAnalyticsProcessorSourceUri"),
        problem_type=app.get("ProblemType"), environment=dict(app.get("Environment") or {}),
        statistics_uri=(baseline.get("StatisticsResource") or {}).get("S3Uri"),
        constraints_uri=(baseline.get("ConstraintsResource") or {}).get("S3Uri"),
        baselining_job=baseline.get("BaseliningJobName"), kms_key=output.get("KmsKeyId"),
        stopping=doc.get("StoppingCondition"), network=doc.get("NetworkConfig"))


def spec_from_inline(monitoring_type: str, job: dict[str, Any]) -> JobSpec:
    """A JobSpec from an inline MonitoringJobDefinition (the SDK's ModelMonitor path)."""
    app = job["MonitoringAppSpecification"]
    inputs = job["MonitoringInputs"]
    baseline = job.get("BaselineConfig") or {}
    output = job["MonitoringOutputConfig"]
    return JobSpec(
        monitoring_type=monitoring_type, definition_name=None, image_uri=app["ImageUri"],
        role_arn=job["RoleArn"], cluster=job["MonitoringResources"]["ClusterConfig"],
        outputs=output["MonitoringOutputs"], endpoint_input=inputs[0].get("EndpointInput"),
        batch_input=inputs[0].get("BatchTransformInput"), entrypoint=app.get("ContainerEntrypoint"),
        arguments=app.get("ContainerArguments"),
        preprocessor_uri=app.get("RecordPreprocessorSourceUri"),
        postprocessor_uri=app.get("PostAnalyticsProcessorSourceUri"),
        environment=dict(job.get("Environment") or {}),
        statistics_uri=(baseline.get("StatisticsResource") or {}).get("S3Uri"),
        constraints_uri=(baseline.get("ConstraintsResource") or {}).get("S3Uri"),
        baselining_job=baseline.get("BaseliningJobName"), kms_key=output.get("KmsKeyId"),
        stopping=job.get("StoppingCondition"), network=job.get("NetworkConfig"))


def check_inline_job(job: dict[str, Any]) -> None:
    """SageMaker's rules for an inline MonitoringJobDefinition beyond its shape."""
    inputs = job["MonitoringInputs"]
    if len(inputs) != 1:
        raise validation_error(
            f"MonitoringJobDefinition.MonitoringInputs has {len(inputs)} members; a monitoring "
            "job reads exactly one EndpointInput or BatchTransformInput.")
    check_input(inputs[0], "MonitoringJobDefinition.MonitoringInputs[0]")
    check_outputs(job["MonitoringOutputConfig"]["MonitoringOutputs"],
                  "MonitoringJobDefinition.MonitoringOutputConfig")


def check_input(job_input: dict[str, Any], member: str) -> None:
    """Exactly one of EndpointInput / BatchTransformInput, with a valid offset window."""
    endpoint, batch = job_input.get("EndpointInput"), job_input.get("BatchTransformInput")
    if (endpoint is None) == (batch is None):
        raise validation_error(
            f"{member} must have exactly one of EndpointInput (an endpoint's captured "
            "traffic) and BatchTransformInput (a transform job's captured data).")
    source = endpoint or batch
    check_window(source.get("StartTimeOffset"), source.get("EndTimeOffset"),
                 f"{member}.StartTimeOffset", f"{member}.EndTimeOffset")
    if batch is not None:
        _require_s3(batch["DataCapturedDestinationS3Uri"],
                    f"{member}.BatchTransformInput.DataCapturedDestinationS3Uri")


def check_outputs(outputs: list[dict[str, Any]], member: str) -> None:
    if len(outputs) != 1:
        raise validation_error(
            f"{member}.MonitoringOutputs has {len(outputs)} members; give exactly one S3Output.")
    _require_s3(outputs[0]["S3Output"]["S3Uri"], f"{member}.MonitoringOutputs[0].S3Output.S3Uri")


def check_baseline(statistics: str | None, constraints: str | None, member: str) -> None:
    if statistics is not None:
        _require_s3(statistics, f"{member}.StatisticsResource.S3Uri")
    if constraints is not None:
        _require_s3(constraints, f"{member}.ConstraintsResource.S3Uri")


def _require_s3(uri: str, member: str) -> None:
    bucket, _, _ = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise validation_error(f"{member} {uri!r} is not an S3 URI (s3://bucket/key).")


def spec_of_schedule(platform: "Platform", document: dict[str, Any]) -> JobSpec:
    """The JobSpec of a schedule's document; ValidationException if its definition is gone."""
    config = document["MonitoringScheduleConfig"]
    monitoring_type = config.get("MonitoringType") or "DataQuality"
    inline = config.get("MonitoringJobDefinition")
    if inline is not None:
        return spec_from_inline(monitoring_type, inline)
    name = config["MonitoringJobDefinitionName"]
    found = platform.resources.get(DEFINITION_KINDS[monitoring_type], name)
    if found is None:
        raise validation_error(
            f"The {monitoring_type} job definition {name} does not exist (it was deleted?).")
    return spec_from_definition(monitoring_type, name, found.document)
