"""Inference experiments (shadow tests) on the server clock: start, end, stop, promote.

An experiment (services/inference_experiments.py) runs by changing its endpoint the way a
client would, through ``dispatch.call``: at its start a new endpoint configuration with the
production variant and the shadow variant (``ShadowProductionVariants``, weighted so the
shadow gets ``SamplingPercentage`` of the requests, see hosting/shadow.py) and an
``UpdateEndpoint``; at its end, or on ``StopInferenceExperiment``, another configuration
and update. The configurations are named ``<experiment>-<step>-<time>`` and stay listed,
as the ones SageMaker makes for a shadow test do.

States (DescribeInferenceExperiment's ``Status``), driven by ``ExperimentLoop`` every half
second of real time against ``platform.clock``:

- ``Creating`` -> ``Created`` while ``Schedule.StartTime`` is ahead, then ``Starting``
  (the endpoint is updating to the experiment's config) -> ``Running`` once the endpoint
  is InService on it;
- ``Running`` -> ``Updating`` -> ``Running`` when UpdateInferenceExperiment changes what
  is deployed;
- at ``Schedule.EndTime``: ``Stopping`` (the endpoint goes back to the variants it had
  before the experiment) -> ``Completed``; StopInferenceExperiment does the same with the
  variants its ``ModelVariantActions`` leave (Promote / Retain / Remove) -> its
  ``DesiredState`` (``Completed`` or ``Cancelled``);
- an endpoint that is deleted, fails, or rejects the update ends the experiment
  ``Cancelled`` with the reason in ``StatusReason``.

Everything the loop needs is in the experiment's record (``_modelyard*`` keys), so a
restarted server carries on where it stopped.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.polling import PollingLoop
from ..store.resources import ListQuery

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.hosting")

KIND = "InferenceExperiment"
ENDPOINT_KIND = "Endpoint"
PREVIOUS_KEY = "_modelyardPrevious"  # the endpoint's variants before the experiment
APPLIED_KEY = "_modelyardApplied"  # the endpoint config the experiment waits for
FINAL_KEY = "_modelyardFinal"  # (status, variant statuses) once the endpoint is on it
ACTIVE = ("Creating", "Created", "Starting", "Updating", "Running", "Stopping")
WAITING = ("Starting", "Updating", "Stopping")

_loops: dict[int, "ExperimentLoop"] = {}


def start(platform: "Platform") -> None:
    loop = ExperimentLoop(platform)
    _loops[id(platform)] = loop
    loop.start()


def stop(platform: "Platform") -> None:
    loop = _loops.pop(id(platform), None)
    if loop is not None:
        loop.stop()


def wake(platform: "Platform") -> None:
    loop = _loops.get(id(platform))
    if loop is not None:
        loop.wake()


# --- endpoint configurations of an experiment -----------------------------------------------


def production_variant(config: dict[str, Any], weight: float) -> dict[str, Any]:
    """A ProductionVariant from a ModelVariantConfig."""
    infrastructure = config["InfrastructureConfig"]["RealTimeInferenceConfig"]
    return {"VariantName": config["VariantName"], "ModelName": config["ModelName"],
            "InstanceType": infrastructure["InstanceType"],
            "InitialInstanceCount": infrastructure["InstanceCount"],
            "InitialVariantWeight": weight}


def experiment_config(document: dict[str, Any]) -> dict[str, Any]:
    """CreateEndpointConfig members for the experiment's running state."""
    mode = document["ShadowModeConfig"]
    shadow_mode = mode["ShadowModelVariants"][0]
    variants = {item["VariantName"]: item for item in document["ModelVariants"]}
    request: dict[str, Any] = {
        "ProductionVariants": [production_variant(variants[mode["SourceModelVariantName"]],
                                                  1.0)],
        "ShadowProductionVariants": [production_variant(
            variants[shadow_mode["ShadowModelVariantName"]],
            shadow_mode["SamplingPercentage"] / 100.0)],
    }
    storage = document.get("DataStorageConfig")
    capture = document[PREVIOUS_KEY].get("DataCaptureConfig")
    if storage:
        capture = {"EnableCapture": True, "InitialSamplingPercentage": 100,
                   "DestinationS3Uri": storage["Destination"],
                   "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
        if storage.get("KmsKey"):
            capture["KmsKeyId"] = storage["KmsKey"]
        if storage.get("ContentType"):
            capture["CaptureContentTypeHeader"] = storage["ContentType"]
    if capture:
        request["DataCaptureConfig"] = capture
    return request


def previous_state(deployment: dict[str, Any]) -> dict[str, Any]:
    """What an endpoint serves (its recorded deployment) as CreateEndpointConfig members."""
    def as_variant(item: dict[str, Any]) -> dict[str, Any]:
        return {"VariantName": item["VariantName"], "ModelName": item["ModelName"],
                "InstanceType": item["InstanceType"],
                "InitialInstanceCount": item["InstanceCount"],
                "InitialVariantWeight": item["Weight"]}

    state: dict[str, Any] = {"ProductionVariants": [as_variant(v)
                                                    for v in deployment["Variants"]]}
    if deployment.get("Shadows"):
        state["ShadowProductionVariants"] = [as_variant(v) for v in deployment["Shadows"]]
    if deployment.get("DataCaptureConfig"):
        state["DataCaptureConfig"] = copy.deepcopy(deployment["DataCaptureConfig"])
    return state


def apply(platform: "Platform", document: dict[str, Any], step: str,
          members: dict[str, Any]) -> str:
    """Create an endpoint config of ``members`` and update the endpoint to it; returns
    the config's name. AwsError when the endpoint cannot be updated now."""
    from ..dispatch import call

    stamp = int(platform.clock.now())
    base = document["Name"][: 63 - len(step) - len(str(stamp)) - 2].rstrip("-")
    name = f"{base}-{step}-{stamp}"
    try:
        call(platform, "sagemaker", "CreateEndpointConfig",
             {"EndpointConfigName": name, **members})
    except AwsError as error:
        if "already existing" not in error.message:
            raise
    call(platform, "sagemaker", "UpdateEndpoint",
         {"EndpointName": document["EndpointMetadata"]["EndpointName"],
          "EndpointConfigName": name})
    return name


def set_variant_statuses(document: dict[str, Any], statuses: dict[str, str]) -> None:
    for item in document["ModelVariants"]:
        if item["VariantName"] in statuses:
            item["Status"] = statuses[item["VariantName"]]


# --- the loop -------------------------------------------------------------------------------


class ExperimentLoop(PollingLoop):
    thread_name = "inference-experiments"
    poll_seconds = 0.5

    def check(self, now: float) -> None:
        if self.platform.resources.none_of(KIND):
            return  # the servers that never ran an experiment
        for status in ACTIVE:
            page = self.platform.resources.list(KIND, ListQuery(
                status_equals=status, descending=False, max_results=100))
            for resource in page.items:
                try:
                    self._advance(resource.name, now)
                except Exception:  # noqa: BLE001 - one experiment's bug must not stop others
                    log.exception("advancing inference experiment %s failed", resource.name)

    def _advance(self, name: str, now: float) -> None:
        resource = self.platform.resources.get(KIND, name)
        if resource is None:
            return
        document = resource.document
        status = document["Status"]
        endpoint = self.platform.resources.get(ENDPOINT_KIND,
                                               document["EndpointMetadata"]["EndpointName"])
        endpoint_doc = endpoint.document if endpoint is not None else None
        endpoint_status = endpoint_doc["EndpointStatus"] if endpoint_doc else None
        if endpoint_status in (None, "Failed", "Deleting"):
            gone = "deleted" if endpoint_status in (None, "Deleting") else "Failed"
            self._finish(name, "Cancelled", f"The endpoint "
                         f"{document['EndpointMetadata']['EndpointName']} is {gone}; the "
                         "inference experiment ended.", now)
            return
        start = document["Schedule"]["StartTime"]
        end = document["Schedule"]["EndTime"]
        if status in ("Creating", "Created"):
            if start > now:
                if status == "Creating":
                    self._write(name, now, lambda d: d.update(Status="Created"))
                return
            if endpoint_status != "InService":
                return  # an update of the endpoint under way: start when it is done
            self._start(name, document, now)
        elif status in WAITING:
            if endpoint_status != "InService":
                return
            if endpoint_doc["EndpointConfigName"] != document[APPLIED_KEY]:
                reason = endpoint_doc.get("FailureReason") or (
                    "The endpoint was updated to another configuration meanwhile.")
                self._finish(name, "Cancelled", reason, now)
                return
            final = document.get(FINAL_KEY)
            if status == "Stopping" and final:
                self._finish(name, final["Status"], document.get("StatusReason"), now,
                             final["Variants"])
            else:
                self._write(name, now, lambda d: (
                    d.update(Status="Running"),
                    set_variant_statuses(d, {v["VariantName"]: "InService"
                                             for v in d["ModelVariants"]})))
        elif status == "Running" and end <= now and endpoint_status == "InService":
            self.end(name, document, now)

    def _start(self, name: str, document: dict[str, Any], now: float) -> None:
        endpoint = self.platform.resources.get(ENDPOINT_KIND,
                                               document["EndpointMetadata"]["EndpointName"])
        assert endpoint is not None
        from .controller import CURRENT_KEY

        previous = previous_state(endpoint.document[CURRENT_KEY])
        staged = {**document, PREVIOUS_KEY: previous}
        try:
            applied = apply(self.platform, staged, "shadow", experiment_config(staged))
        except AwsError as error:
            if "in-progress" in error.message:
                return  # the endpoint started updating meanwhile: try again later
            self._finish(name, "Cancelled", f"Starting the experiment failed: {error.message}",
                         now)
            return

        def started(d: dict[str, Any]) -> None:
            d.update(Status="Starting", **{PREVIOUS_KEY: previous, APPLIED_KEY: applied})
            set_variant_statuses(d, {v["VariantName"]: "Creating" for v in d["ModelVariants"]})

        self._write(name, now, started)
        log.info("inference experiment %s starting on endpoint config %s", name, applied)

    def end(self, name: str, document: dict[str, Any], now: float) -> None:
        """The schedule ran out: back to the variants from before the experiment."""
        mode = document["ShadowModeConfig"]
        shadow = mode["ShadowModelVariants"][0]["ShadowModelVariantName"]
        try:
            applied = apply(self.platform, document, "end", document[PREVIOUS_KEY])
        except AwsError as error:
            if "in-progress" in error.message:
                return
            self._finish(name, "Cancelled", f"Ending the experiment failed: {error.message}",
                         now)
            return
        variants = {mode["SourceModelVariantName"]: "InService", shadow: "Deleted"}

        def stopping(d: dict[str, Any]) -> None:
            d.update(Status="Stopping", **{APPLIED_KEY: applied, FINAL_KEY: {
                "Status": "Completed", "Variants": variants}})
            set_variant_statuses(d, {shadow: "Deleting"})

        self._write(name, now, stopping)

    def _finish(self, name: str, status: str, reason: str | None, now: float,
                variants: dict[str, str] | None = None) -> None:
        def finished(d: dict[str, Any]) -> None:
            d.update(Status=status, CompletionTime=now)
            if reason:
                d["StatusReason"] = reason[:1024]
            set_variant_statuses(d, variants or {})
            d.pop(FINAL_KEY, None)

        self._write(name, now, finished)
        log.info("inference experiment %s %s", name, status.lower())

    def _write(self, name: str, now: float, change: Any) -> None:
        def update(resource: Any) -> dict[str, Any]:
            document = copy.deepcopy(resource.document)
            change(document)
            document["LastModifiedTime"] = now
            document["__status__"] = document["Status"]
            return document

        self.platform.resources.update(KIND, name, update, now=now,
                                       missing=lambda: AwsError("ResourceNotFound", name))
