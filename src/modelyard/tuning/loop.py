"""The tuning loop: one thread that moves every running tuning job forward.

Each pass (every half second, and whenever a job ends: ``executor.on_finished``) looks at
the tuning jobs that are InProgress or Stopping and, for each:

1. reads its trials' training jobs: new intermediate objective values (the job's metric
   series as its log is read), and the outcome of the ones that ended, which it tells the
   study; a trial failing with a retryable (internal) error runs again while
   ``RetryStrategy.MaximumRetryAttempts`` allows;
2. stops trials early: Hyperband's pruner, or with ``TrainingJobEarlyStoppingType=Auto``
   the median rule (SageMaker's: the trial's latest value is worse than the median of the
   earlier trials' running averages up to the same step, once three trials can be
   compared);
3. checks the completion criteria (job limit, runtime limit, target value, best objective
   not improving, convergence);
4. launches trials up to ``MaxParallelTrainingJobs``: it asks the study, records the trial
   in the tuning job's document, then creates its training job through ``dispatch.call``
   exactly as a client would. A crash between the two leaves a recorded trial without a
   job, which the next pass creates: no trial is lost or launched twice.

Only this thread writes ``_Trials``; Stop and Delete only change the status, in one
transaction, and the loop reads it back before each write.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.polling import PollingLoop
from ..engine.training_job import KIND as TRAINING_KIND
from ..store.metrics import MetricStore
from ..store.resources import ListQuery
from . import records as rec
from .search import Search, Space, build_study
from .space import parse_ranges
from .validation import definitions_of, hyperband_resources

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

KIND = "HyperParameterTuningJob"
MEDIAN_RULE_MIN_TRIALS = 3
log = logging.getLogger("modelyard.tuning")


class TuningLoop(PollingLoop):
    thread_name = "modelyard-tuning"
    poll_seconds = 0.5
    log = log

    def __init__(self, platform: "Platform") -> None:
        super().__init__(platform)
        self.searches: dict[str, Search] = {}
        self.metrics = MetricStore(platform.db)

    def on_job_finished(self, kind: str, name: str) -> None:
        if kind == TRAINING_KIND:
            self.wake()

    def check(self, now: float) -> None:
        if self.platform.resources.none_of(KIND):
            self.searches.clear()
            return
        active = set()
        for status in ("InProgress", "Stopping"):
            page = self.platform.resources.list(KIND, ListQuery(
                status_equals=status, descending=False, max_results=1000))
            for resource in page.items:
                active.add(resource.name)
                try:
                    self.advance(resource, now)
                except Exception:  # noqa: BLE001 - one broken job must not stall the others
                    log.exception("tuning job %s: a pass failed", resource.name)
                    self.searches.pop(resource.name, None)  # rebuilt from the record
        for name in set(self.searches) - active:
            del self.searches[name]

    # -- one tuning job ---------------------------------------------------------------

    def advance(self, resource: "Resource", now: float) -> None:
        document = resource.document
        name = resource.name
        records = [dict(item) for item in document.get("_Trials", [])]
        search = self.searches.get(name)
        if search is None:
            search = self._build(document, records)
            self.searches[name] = search
        stopping = document["HyperParameterTuningJobStatus"] == "Stopping"
        state = {"changed": False, "done": document.get("_Done"), "stop_all": stopping}

        self._runtime_limit(document, now, state)
        for record in list(records):
            if record["Status"] not in rec.TERMINAL:
                self._follow(document, search, records, record, state)
        if not state["done"] and not stopping:
            self._completion_criteria(document, records, now, state)
        if not state["done"] and not stopping:
            self._launch(document, search, records, state, now)

        running = [item for item in records if item["Status"] not in rec.TERMINAL]
        final = None
        if not running and (stopping or state["done"] or self._budget_spent(document, records)):
            final = "Stopped" if stopping else self._outcome(records)
        if state["changed"] or final or state["done"] != document.get("_Done"):
            self._write(name, records, state, final, now)

    def _build(self, document: dict[str, Any], records: list[dict[str, Any]]) -> Search:
        request = document
        config = document["HyperParameterTuningJobConfig"]
        definitions = {}
        for definition_name, definition in definitions_of(request):
            ranges = (definition["HyperParameterRanges"] if definition_name is not None
                      else config.get("ParameterRanges", {}))
            prefix = f"{definition_name}." if definition_name is not None else ""
            definitions[definition_name] = parse_ranges(ranges, prefix=prefix, where="")
        hyperband = (hyperband_resources(config, request)
                     if config["Strategy"] == "Hyperband" else None)
        return build_study(document["HyperParameterTuningJobName"], config, Space(definitions),
                           document["_Seed"], document.get("_WarmStart", []), records, hyperband)

    def _follow(self, document: dict[str, Any], search: Search, records: list[dict[str, Any]],
                record: dict[str, Any], state: dict[str, Any]) -> None:
        """Bring one unfinished trial up to date with its training job."""
        job = self.platform.resources.get(TRAINING_KIND, record["TrainingJobName"])
        if job is None:  # recorded, then the server stopped before the job was created
            if state["stop_all"] or state["done"] == "runtime":
                self._end(search, record, "Stopped", None, "fail")
                state["changed"] = True
            else:
                self._create_job(document, search, record)
                state["changed"] = True
            return
        metric = rec.objective_of(document, record.get("Definition"))["MetricName"]
        values = [point.value for point in self.metrics.series(record["TrainingJobName"], metric)]
        if values != record.get("Intermediate", []):
            record["Intermediate"] = values
            state["changed"] = True
        job_document = job.document
        status = job_document["TrainingJobStatus"]
        if job_document.get("TrainingStartTime") and not record.get("TrainingStartTime"):
            record["TrainingStartTime"] = job_document["TrainingStartTime"]
            state["changed"] = True
        if status in rec.TERMINAL:
            self._finished(document, search, records, record, job_document, values)
            state["changed"] = True
            return
        if record["Status"] != status:
            record["Status"] = status
            state["changed"] = True
        if record.get("StopRequested") or status != "InProgress":
            return
        if state["stop_all"] or state["done"] == "runtime":
            self._stop(record)
            state["changed"] = True
            return
        config = document["HyperParameterTuningJobConfig"]
        if config["Strategy"] == "Hyperband":
            prune = search.report(record["Trial"], values)
        elif config.get("TrainingJobEarlyStoppingType") == "Auto":
            prune = median_rule_stops(records, record, values, rec.direction_of(document))
        else:
            prune = False
        if prune:
            record["EarlyStopped"] = True
            self._stop(record)
            state["changed"] = True

    def _finished(self, document: dict[str, Any], search: Search, records: list[dict[str, Any]],
                  record: dict[str, Any], job: dict[str, Any], values: list[float]) -> None:
        metric = rec.objective_of(document, record.get("Definition"))["MetricName"]
        final = {item["MetricName"]: item["Value"] for item in job.get("FinalMetricDataList", [])}
        objective = final.get(metric, values[-1] if values else None)
        for member in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
            if job.get(member) is not None:
                record[member] = job[member]
        status = job["TrainingJobStatus"]
        if status == "Completed":
            self._end(search, record, status, objective,
                      "complete" if objective is not None else "fail")
        elif status == "Stopped":
            self._end(search, record, status, objective,
                      "pruned" if objective is not None else "fail")
        else:
            record["ErrorClass"] = rec.classify_failure(job.get("FailureReason"))
            definition = self._definition(document, record.get("Definition"))
            allowed = definition.get("RetryStrategy", {}).get("MaximumRetryAttempts", 0)
            if record["ErrorClass"] == "RetryableError" and record.get("Attempt", 0) < allowed \
                    and not document.get("_Done") \
                    and document["HyperParameterTuningJobStatus"] == "InProgress":
                record["Status"] = "Failed"
                retry = self._new_record(document, record["Trial"], record["Ordinal"],
                                         record.get("Definition"),
                                         record["Params"], record["Tuned"],
                                         record.get("Attempt", 0) + 1, job["LastModifiedTime"])
                records.append(retry)
                self._create_job(document, search, retry)
                return
            self._end(search, record, status, None, "fail")

    @staticmethod
    def _end(search: Search, record: dict[str, Any], status: str, objective: float | None,
             study_state: str) -> None:
        record["Status"] = status
        record["Objective"] = objective
        record["StudyState"] = study_state
        search.finish(record["Trial"], study_state, objective)

    def _stop(self, record: dict[str, Any]) -> None:
        from ..dispatch import call

        record["StopRequested"] = True
        try:
            call(self.platform, "sagemaker", "StopTrainingJob",
                 {"TrainingJobName": record["TrainingJobName"]})
        except AwsError as error:  # it ended meanwhile: the next pass reads how
            log.info("stopping %s: %s", record["TrainingJobName"], error.message)

    # -- limits and completion --------------------------------------------------------

    def _runtime_limit(self, document: dict[str, Any], now: float, state: dict[str, Any]) -> None:
        limit = document["HyperParameterTuningJobConfig"]["ResourceLimits"].get(
            "MaxRuntimeInSeconds")
        if limit and now - document["CreationTime"] >= limit and state["done"] != "runtime":
            state["done"] = "runtime"

    def _completion_criteria(self, document: dict[str, Any], records: list[dict[str, Any]],
                             now: float, state: dict[str, Any]) -> None:
        config = document["HyperParameterTuningJobConfig"]
        criteria = config.get("TuningJobCompletionCriteria", {})
        direction = rec.direction_of(document)
        best = rec.best_record(records, direction)
        target = criteria.get("TargetObjectiveMetricValue")
        if target is not None and best is not None:
            if (best["Objective"] >= target) if direction == "Maximize" \
                    else (best["Objective"] <= target):
                state["done"] = "target"
                return
        streak = rec.not_improving(records, direction)
        patience = criteria.get("BestObjectiveNotImproving", {}).get(
            "MaxNumberOfTrainingJobsNotImproving")
        if patience and streak >= patience:
            state["done"] = "not-improving"
            return
        if criteria.get("ConvergenceDetected", {}).get("CompleteOnConvergence") == "Enabled":
            budget = config["ResourceLimits"].get("MaxNumberOfTrainingJobs", len(records))
            if streak >= rec.convergence_window(budget):
                state["done"] = "converged"
                state["converged_at"] = now

    def _budget_spent(self, document: dict[str, Any], records: list[dict[str, Any]]) -> bool:
        return len({item["Trial"] for item in records}) >= budget_of(document)

    @staticmethod
    def _outcome(records: list[dict[str, Any]]) -> str:
        if records and all(item["Status"] == "Failed" for item in records):
            return "Failed"
        return "Completed"

    # -- launching --------------------------------------------------------------------

    def _launch(self, document: dict[str, Any], search: Search, records: list[dict[str, Any]],
                state: dict[str, Any], now: float) -> None:
        limits = document["HyperParameterTuningJobConfig"]["ResourceLimits"]
        parallel = limits["MaxParallelTrainingJobs"]
        budget = budget_of(document)
        launched = len({item["Trial"] for item in records})
        running = sum(1 for item in records if item["Status"] not in rec.TERMINAL)
        fresh = []
        while running < parallel and launched < budget:
            number, definition, params = search.propose()
            ranges = search.space.ranges(definition)
            tuned = {item.name: item.value(params[item.key]) for item in ranges}
            record = self._new_record(document, number, launched + 1, definition, params,
                                      tuned, 0, now)
            records.append(record)
            fresh.append(record)
            running += 1
            launched += 1
        if fresh:
            # Recorded first: a crash now leaves trials whose jobs the next pass creates.
            self._write(document["HyperParameterTuningJobName"], records, state, None, now)
            for record in fresh:
                self._create_job(document, search, record)
            state["changed"] = True

    def _new_record(self, document: dict[str, Any], number: int, ordinal: int,
                    definition: str | None, params: dict[str, Any], tuned: dict[str, str],
                    attempt: int, now: float) -> dict[str, Any]:
        name = document["HyperParameterTuningJobName"]
        digest = hashlib.sha256(f"{document['HyperParameterTuningJobArn']}/{number}/{attempt}"
                                .encode()).hexdigest()[:8]
        job_name = f"{name[:32]}-{ordinal:03d}-{digest}"
        return {
            "TrainingJobName": job_name,
            "TrainingJobArn": self.platform.settings.arn(
                "sagemaker", f"training-job/{job_name.lower()}"),
            "Trial": number, "Ordinal": ordinal, "Attempt": attempt, "Definition": definition,
            "Params": params, "Tuned": tuned, "Status": "InProgress",
            "CreationTime": now, "Intermediate": [], "StudyState": None,
        }

    def _definition(self, document: dict[str, Any], name: str | None) -> dict[str, Any]:
        for definition_name, definition in definitions_of(document):
            if definition_name == name:
                return definition
        raise KeyError(name)

    def _create_job(self, document: dict[str, Any], search: Search,
                    record: dict[str, Any]) -> None:
        from ..dispatch import call

        definition = self._definition(document, record.get("Definition"))
        request = training_job_request(definition, record)
        tuning_arn = document["HyperParameterTuningJobArn"]
        try:
            # TuningJobArn is in the job's record from its creation (and its first event).
            call(self.platform, "sagemaker", "CreateTrainingJob", request,
                 internal={"TuningJobArn": tuning_arn})
        except AwsError as error:
            if error.code != "ResourceInUse":
                record["FailureReason"] = f"ClientError: {error.message}"
                record["ErrorClass"] = "NonRetryableError"
                self._end(search, record, "Failed", None, "fail")
                return
            existing = self.platform.resources.get(TRAINING_KIND, record["TrainingJobName"])
            if existing is not None and not existing.document.get("TuningJobArn"):
                # Created by an older modelyard that wrote the ARN only afterwards.
                self.platform.resources.update(
                    TRAINING_KIND, record["TrainingJobName"],
                    lambda resource: {**resource.document, "TuningJobArn": tuning_arn},
                    now=self.platform.clock.now(),
                    missing=lambda: AwsError("ResourceNotFound", ""))

    # -- writing ----------------------------------------------------------------------

    def _write(self, name: str, records: list[dict[str, Any]], state: dict[str, Any],
               final: str | None, now: float) -> None:
        def change(resource: "Resource") -> dict[str, Any]:
            document = dict(resource.document)
            document["_Trials"] = records
            document["_Done"] = state["done"]
            if state.get("converged_at") and not document.get("_ConvergenceDetectedTime"):
                document["_ConvergenceDetectedTime"] = state["converged_at"]
            status = document["HyperParameterTuningJobStatus"]
            if final and status in ("InProgress", "Stopping"):
                status = "Stopped" if status == "Stopping" else final
                document["HyperParameterTuningEndTime"] = now
                if status == "Failed":
                    reasons = [item.get("FailureReason") for item in records
                               if item.get("FailureReason")]
                    document["FailureReason"] = (
                        f"All {len(records)} training jobs failed"
                        + (f"; the first: {reasons[0]}" if reasons else ""))[:1024]
            document["HyperParameterTuningJobStatus"] = status
            document["LastModifiedTime"] = now
            document.update(rec.derived(document, now))
            document["__status__"] = status
            return document

        self.platform.resources.update(KIND, name, change, now=now,
                                       missing=lambda: AwsError("ResourceNotFound", name))


def budget_of(document: dict[str, Any]) -> int:
    """MaxNumberOfTrainingJobs, or for Grid the number of combinations."""
    config = document["HyperParameterTuningJobConfig"]
    given = config["ResourceLimits"].get("MaxNumberOfTrainingJobs")
    if given is not None:
        return given
    size = 1
    for item in config.get("ParameterRanges", {}).get("CategoricalParameterRanges", []):
        size *= len(item["Values"])
    return size


def training_job_request(definition: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The CreateTrainingJob request of one trial: the definition, its static and tuned
    hyperparameters (with ``_tuning_objective_metric``, injected at creation)."""
    algorithm = {key: value for key, value in definition["AlgorithmSpecification"].items()
                 if key in ("TrainingImage", "TrainingInputMode", "MetricDefinitions")}
    request: dict[str, Any] = {
        "TrainingJobName": record["TrainingJobName"],
        "AlgorithmSpecification": algorithm,
        "RoleArn": definition["RoleArn"],
        "OutputDataConfig": definition["OutputDataConfig"],
        "StoppingCondition": definition["StoppingCondition"],
        "HyperParameters": {**definition.get("StaticHyperParameters", {}), **record["Tuned"]},
    }
    for member in ("InputDataConfig", "VpcConfig", "ResourceConfig", "EnableNetworkIsolation",
                   "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
                   "CheckpointConfig", "Environment"):
        if member in definition:
            request[member] = definition[member]
    if "ResourceConfig" not in request:
        tuning = definition.get("HyperParameterTuningResourceConfig", {})
        instance = tuning.get("InstanceType") or next(
            (item["InstanceType"] for item in tuning.get("InstanceConfigs", [])), "ml.m5.large")
        request["ResourceConfig"] = {"InstanceType": instance,
                                     "InstanceCount": tuning.get("InstanceCount", 1),
                                     "VolumeSizeInGB": tuning.get("VolumeSizeInGB", 30)}
    return request


def median_rule_stops(records: list[dict[str, Any]], record: dict[str, Any],
                      values: list[float], direction: str) -> bool:
    """SageMaker's Auto early stopping: stop when the trial's latest objective value is
    worse than the median of the earlier trials' running averages up to the same step."""
    step = len(values)
    if step == 0:
        return False
    averages = []
    for other in records:
        earlier = other.get("Intermediate", [])
        if other is record or other["Status"] not in rec.TERMINAL or not earlier \
                or other.get("Definition") != record.get("Definition"):
            continue
        window = earlier[:step]
        averages.append(sum(window) / len(window))
    if len(averages) < MEDIAN_RULE_MIN_TRIALS:
        return False
    median = statistics.median(averages)
    latest = values[-1]
    return latest < median if direction == "Maximize" else latest > median
