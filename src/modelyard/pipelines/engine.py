"""Runs pipeline executions: starts ready steps, checks running ones, finishes executions.

All state lives in the store (execution and step records); ``advance`` reads it, acts,
and writes it back, so the engine can stop at any moment and continue after a restart
from the steps already finished. One thread advances every active execution when woken
(a job finished, an API call changed something) or once a second.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.channels import S3Location
from ..store.resources import ListQuery
from . import records
from .cache import StepCache, cache_key
from .definition import PipelineDefinition, StepSpec, parse_definition
from .expressions import ExpressionError, resolve
from .quality_check import cache_basis
from .steps import (
    JOB_STEPS, StepResult, check_job, job_status, read_property_files, start_step, stop_job,
)
from .tuning_step import KIND as TUNING_JOB_KIND

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.pipelines")

DEFAULT_PARALLELISM = 50
STEP_FAILURE = "Step failure: One or multiple steps failed."
JOB_RETRY_TYPES = ("SageMaker.JOB_INTERNAL_ERROR",)


class ExecutionScope:
    """What expressions see while an execution runs (``expressions.Scope``)."""

    def __init__(self, execution: dict[str, Any], steps: dict[str, dict[str, Any]],
                 platform: "Platform") -> None:
        self.parameters = execution["_parameters"]
        self._steps = steps
        self._platform = platform
        self.execution = {
            "PipelineExecutionId": execution["_id"],
            "PipelineExecutionArn": execution["PipelineExecutionArn"],
            "StartDateTime": datetime.fromtimestamp(execution["CreationTime"], tz=timezone.utc),
            "CurrentDateTime": datetime.now(tz=timezone.utc),
            "PipelineName": execution["_pipeline_name"],
            "PipelineArn": execution["PipelineArn"],
        }

    def step_properties(self, step_name: str) -> dict[str, Any]:
        record = self._steps.get(step_name)
        if record is None or record["StepStatus"] != "Succeeded":
            raise ExpressionError(f"Step {step_name} has not succeeded, so its properties are unknown.")
        return record.get("_properties", {})

    def read_json(self, s3_uri: str) -> Any:
        """JsonGet's S3Uri form: a JSON document in the object store."""
        location = S3Location.parse(s3_uri)
        try:
            reader = self._platform.objects.open_object(location.bucket, location.key)
            return json.loads(b"".join(reader.iter_chunks()))
        except AwsError as error:
            raise ExpressionError(f"Cannot read {s3_uri}: {error.message}") from None
        except ValueError as error:
            raise ExpressionError(f"{s3_uri} is not JSON: {error}") from None

    def property_file(self, step_name: str, property_file_name: str) -> Any:
        files = self.step_properties(step_name) and self._steps[step_name].get("_property_files", {})
        if property_file_name not in files:
            raise ExpressionError(f"Step {step_name} has no property file {property_file_name}.")
        return files[property_file_name]


class CacheKeyScope:
    """Resolves like ``scope`` but keeps execution variables symbolic.

    SDK-generated output paths embed the execution id; SageMaker still caches such steps,
    so a cache key must not change with it. Parameters and step properties resolve as usual.
    """

    def __init__(self, scope: ExecutionScope) -> None:
        self._scope = scope
        self.parameters = scope.parameters
        self.execution = {name: f"{{Execution.{name}}}" for name in scope.execution}

    def step_properties(self, step_name: str) -> dict[str, Any]:
        return self._scope.step_properties(step_name)

    def property_file(self, step_name: str, property_file_name: str) -> Any:
        return self._scope.property_file(step_name, property_file_name)

    def read_json(self, s3_uri: str) -> Any:
        return self._scope.read_json(s3_uri)


class PipelineEngine:
    def __init__(self, platform: "Platform") -> None:
        self.platform = platform
        self.cache = StepCache(platform.db)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._definitions: dict[str, PipelineDefinition] = {}
        self._thread = threading.Thread(target=self._loop, name="pipelines", daemon=True)

    def start(self) -> None:
        # A Tuning step's job ends outside the executor: wake on its status changes too.
        self.platform.resources.status_listeners.append(self._status_changed)
        self._thread.start()

    def _status_changed(self, kind: str, _old: str | None, _resource: Any) -> None:
        if kind == TUNING_JOB_KIND:
            self._wake.set()

    def wake(self, *_: Any) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            for execution_id in self._active_executions():
                try:
                    self.advance(execution_id)
                except Exception:  # noqa: BLE001 - one broken execution must not stop the rest
                    log.exception("advancing pipeline execution %s failed", execution_id)

    def _active_executions(self) -> list[str]:
        names = []
        for status in ("Executing", "Stopping"):
            token = None
            while True:
                page = self.platform.resources.list(records.EXECUTION, ListQuery(
                    status_equals=status, descending=False, max_results=100, next_token=token))
                names += [item.name for item in page.items]
                token = page.next_token
                if not token:
                    break
        return names

    def definition(self, execution: dict[str, Any]) -> PipelineDefinition:
        execution_id = execution["_id"]
        if execution_id not in self._definitions:
            self._definitions[execution_id] = parse_definition(execution["_definition"])
        return self._definitions[execution_id]

    # --- one pass over one execution ---------------------------------------------------

    def advance(self, execution_id: str) -> None:
        platform = self.platform
        resource = platform.resources.get(records.EXECUTION, execution_id)
        if resource is None:
            return
        execution = resource.document
        definition = self.definition(execution)
        steps = records.execution_steps(platform, execution_id)
        if execution["PipelineExecutionStatus"] == "Stopping":
            self._stop(execution, steps)
            return
        for name, record in list(steps.items()):
            if record["StepStatus"] == "Executing":
                steps[name] = self._check(execution, definition.steps[name], record)
        if not any(record["StepStatus"] == "Failed" for record in steps.values()):
            self._start_ready(execution, definition, steps)
        self._finish_if_done(execution, definition, steps)

    def _start_ready(self, execution: dict, definition: PipelineDefinition,
                     steps: dict[str, dict]) -> None:
        limit = execution.get("ParallelismConfiguration", {}).get(
            "MaxParallelExecutionSteps", DEFAULT_PARALLELISM)
        running = sum(1 for record in steps.values() if record["StepStatus"] == "Executing")
        selected = execution.get("_selected_steps")
        for spec in definition.steps.values():
            if running >= limit:
                return
            if spec.name in steps or not self._ready(spec, steps):
                continue
            if selected is not None and spec.name not in selected:
                continue
            steps[spec.name] = self._start(execution, spec, steps)
            if steps[spec.name]["StepStatus"] == "Executing":
                running += 1
            if steps[spec.name]["StepStatus"] == "Failed":
                return

    @staticmethod
    def _ready(spec: StepSpec, steps: dict[str, dict]) -> bool:
        if spec.condition_branch:
            condition, branch = spec.condition_branch
            record = steps.get(condition)
            if record is None or record["StepStatus"] != "Succeeded":
                return False
            outcome = record["Metadata"]["Condition"]["Outcome"] == "True"
            if outcome != (branch == "if"):
                return False
        return all(
            upstream in steps and steps[upstream]["StepStatus"] == "Succeeded"
            for upstream in spec.upstream
        )

    def _start(self, execution: dict, spec: StepSpec, steps: dict[str, dict]) -> dict:
        platform, execution_id = self.platform, execution["_id"]
        now = platform.clock.now()
        record: dict[str, Any] = {
            "StepName": spec.name,
            "StepDisplayName": spec.raw.get("DisplayName"),
            "StepDescription": spec.raw.get("Description"),
            "StartTime": now,
            "StepStatus": "Executing",
            "AttemptCount": 1,
            "Metadata": {},
        }
        scope = ExecutionScope(execution, steps, platform)
        try:
            # A condition resolves its own operands, so Or and Not can short-circuit.
            arguments = spec.arguments if spec.type == "Condition" else resolve(spec.arguments, scope)
            if self._caches(spec):
                record["_cache_key"] = cache_key(spec.type, resolve(cache_basis(spec), CacheKeyScope(scope)))
            hit = self._cached(execution, spec, record.get("_cache_key"), arguments)
            if hit is not None:
                record.update(hit, StartTime=now, EndTime=now)
                records.create_step_record(platform, execution_id, execution["PipelineExecutionArn"], record)
                return record
            result = start_step(platform, spec, arguments, scope, execution_id)
        except ExpressionError as error:
            record.update(StepStatus="Failed", EndTime=now, FailureReason=str(error))
            records.create_step_record(platform, execution_id, execution["PipelineExecutionArn"], record)
            return record
        record["_arguments"] = arguments
        self._apply(record, spec, result, now)
        records.create_step_record(platform, execution_id, execution["PipelineExecutionArn"], record)
        if record["StepStatus"] == "Succeeded":
            self._remember(execution, spec, record)
        return record

    def _check(self, execution: dict, spec: StepSpec, record: dict) -> dict:
        platform, execution_id = self.platform, execution["_id"]
        now = platform.clock.now()
        retry_at = record.get("_retry_at")
        if retry_at is not None:
            if now < retry_at:
                return record
            return self._retry(execution, spec, record)
        job = record.get("_job")
        polled = spec.type in JOB_STEPS or spec.type in ("Lambda", "QualityCheck", "Tuning")
        if not polled or job is None:
            return record  # a callback waits for the API
        result = check_job(platform, spec, job, record["Metadata"])
        if result.status == "Executing":
            return record
        delay = self._retry_delay(spec, record, result)
        if delay is not None:
            return records.update_step_record(platform, execution_id, spec.name, lambda doc: doc.update(
                _retry_at=now + delay, FailureReason=result.failure_reason))
        updated = dict(record)
        self._apply(updated, spec, result, now)
        saved = records.update_step_record(platform, execution_id, spec.name,
                                           lambda doc: doc.update(updated))
        if saved["StepStatus"] == "Succeeded":
            self._remember(execution, spec, saved)
        return saved

    def _apply(self, record: dict, spec: StepSpec, result: StepResult, now: float) -> None:
        record["StepStatus"] = result.status
        record["Metadata"] = result.metadata
        record["_properties"] = result.properties
        if result.job:
            record["_job"] = result.job
        if result.status == "Succeeded" and spec.property_files:
            try:
                record["_property_files"] = read_property_files(self.platform, spec, result.properties)
            except ExpressionError as error:
                record["StepStatus"], result.failure_reason = "Failed", str(error)
        if record["StepStatus"] != "Executing":
            record["EndTime"] = now
        if record["StepStatus"] == "Failed" and result.failure_reason is not None:
            record["FailureReason"] = result.failure_reason
        else:
            record.pop("FailureReason", None)

    # --- retries -----------------------------------------------------------------------

    def _retry_delay(self, spec: StepSpec, record: dict, result: StepResult) -> float | None:
        """Seconds to wait before the next attempt, or None when no policy allows one."""
        if result.status != "Failed" or not result.retryable:
            return None
        attempts = record.get("AttemptCount", 1)
        elapsed_minutes = (self.platform.clock.now() - record["StartTime"]) / 60
        for policy in spec.retry_policies:
            if not set(policy.exception_types) & set(JOB_RETRY_TYPES):
                continue
            if attempts >= policy.max_attempts:
                continue
            if policy.expire_after_mins is not None and elapsed_minutes >= policy.expire_after_mins:
                continue
            return policy.interval_seconds * policy.backoff_rate ** (attempts - 1)
        return None

    def _retry(self, execution: dict, spec: StepSpec, record: dict) -> dict:
        scope = ExecutionScope(execution, records.execution_steps(self.platform, execution["_id"]),
                               self.platform)
        result = start_step(self.platform, spec, record["_arguments"], scope, execution["_id"])

        def change(document: dict) -> None:
            document["AttemptCount"] = document.get("AttemptCount", 1) + 1
            document.pop("_retry_at", None)
            self._apply(document, spec, result, self.platform.clock.now())

        log.info("retrying step %s of %s", spec.name, execution["_id"])
        return records.update_step_record(self.platform, execution["_id"], spec.name, change)

    # --- cache -------------------------------------------------------------------------

    @staticmethod
    def _caches(spec: StepSpec) -> bool:
        return spec.cache is not None and spec.cache.enabled and (
            spec.type in JOB_STEPS or spec.type in ("QualityCheck", "Tuning"))

    def _cached(self, execution: dict, spec: StepSpec, key: str | None, arguments: Any) -> dict | None:
        if key is None:
            return None
        not_before = self.platform.clock.now() - spec.cache.expire_after.total_seconds()
        entry = self.cache.find(execution["_pipeline_name"], key, not_before)
        if entry is None:
            return None
        source = records.execution_steps(self.platform, entry.execution_id).get(entry.step_name)
        if source is None or source["StepStatus"] != "Succeeded":
            return None
        return {
            "StepStatus": "Succeeded",
            "Metadata": source["Metadata"],
            "CacheHitResult": {"SourcePipelineExecutionArn": entry.execution_arn},
            "_properties": source.get("_properties", {}),
            "_property_files": source.get("_property_files", {}),
            "_arguments": arguments,
            "_cache_key": key,
        }

    def _remember(self, execution: dict, spec: StepSpec, record: dict) -> None:
        if "_cache_key" not in record or "CacheHitResult" in record:
            return
        self.cache.remember(execution["_pipeline_name"], record["_cache_key"],
                            execution["_id"], execution["PipelineExecutionArn"], spec.name,
                            record.get("EndTime", self.platform.clock.now()))

    # --- ending ------------------------------------------------------------------------

    def _finish_if_done(self, execution: dict, definition: PipelineDefinition,
                        steps: dict[str, dict]) -> None:
        if any(record["StepStatus"] == "Executing" for record in steps.values()):
            return
        failed = [record for record in steps.values() if record["StepStatus"] in ("Failed", "Stopped")]
        if not failed and self._more_to_run(execution, definition, steps):
            return
        if failed:
            # As SageMaker: the execution's reason is generic, even for a Fail step, whose own
            # message stays in its step record (Metadata.Fail.ErrorMessage).
            reason, status = STEP_FAILURE, "Failed"
        else:
            reason, status = None, "Succeeded"

        def change(document: dict) -> None:
            document["PipelineExecutionStatus"] = status
            if reason is not None:
                document["FailureReason"] = reason
            else:
                document.pop("FailureReason", None)

        records.update_execution(self.platform, execution["_id"], change)
        self._definitions.pop(execution["_id"], None)
        log.info("pipeline execution %s %s", execution["_id"], status)

    def _more_to_run(self, execution: dict, definition: PipelineDefinition,
                     steps: dict[str, dict]) -> bool:
        selected = execution.get("_selected_steps")
        return any(
            spec.name not in steps and self._ready(spec, steps)
            and (selected is None or spec.name in selected)
            for spec in definition.steps.values()
        )

    def _stop(self, execution: dict, steps: dict[str, dict]) -> None:
        platform, execution_id = self.platform, execution["_id"]
        still_running = False
        for name, record in steps.items():
            if record["StepStatus"] != "Executing":
                continue
            job = record.get("_job")
            status = job_status(platform, job) if job is not None else None
            if status in ("InProgress", "Stopping"):
                if status == "InProgress":
                    stop_job(platform, job)
                still_running = True
                continue
            now = platform.clock.now()
            records.update_step_record(platform, execution_id, name,
                                       lambda doc: doc.update(StepStatus="Stopped", EndTime=now))
        if not still_running:
            records.update_execution(platform, execution_id,
                                     lambda doc: doc.update(PipelineExecutionStatus="Stopped"))
