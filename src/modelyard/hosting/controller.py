"""The endpoint controller: brings every endpoint's model servers to what its record asks.

The API handlers (services/endpoints.py) only write the desired state into the endpoint's
record -- ``EndpointStatus`` Creating / Updating / Deleting and the deployment under
``_modelyardTarget`` -- and wake the controller. The controller runs each endpoint's
deployment in a worker thread, one at a time per endpoint, as a small state machine:

- **Creating**: start the target fleet; all instances healthy -> publish it to
  ``platform.live_endpoints`` and go InService; any failure -> stop it, Failed.
- **Updating**, ``Mode`` ``replace`` (UpdateEndpoint, blue/green, all at once):
  ``start`` the new fleet -> ``shift`` traffic to it (publish) -> ``drain`` the old fleet
  (wait for its in-flight requests, bounded) -> ``retire`` it. A failure before the shift
  leaves the old fleet serving, InService with FailureReason. With a ``DeploymentConfig``
  (deployment guardrails) ``_replace`` hands over to hosting/deployment.py: canary / linear
  steps with bakes, rolling batches, alarm rollback (``RollingBack``), while the other fleet
  is kept as the endpoint's *standby* (``_standby``) so shutdown stops it too.
- **Updating**, ``Mode`` ``adjust`` (UpdateEndpointWeightsAndCapacities): keep the
  instances, start extra ones, republish with the new weights, drain and stop surplus.
- **Deleting**: unpublish, stop everything, delete the record.

What serves is recorded under ``_modelyardCurrent``. After a restart (even kill -9, after
which no model server survives: see fleet.py) ``recover`` restarts every endpoint that was
InService, Creating or Updating from its stored deployment, or marks it Failed.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..store.resources import ListQuery
from .deployment import resume, run_guarded
from .fleet import ModelServer, StartFailed, VariantSpec
from .live import LiveEndpoint, LiveVariant, mixed
from .shadow import live_shadows, shadow_summaries

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.hosting")

KIND = "Endpoint"
TARGET_KEY = "_modelyardTarget"
CURRENT_KEY = "_modelyardCurrent"
DRAIN_SECONDS = 30.0
SWITCH_GRACE_SECONDS = 0.5  # requests routed by the old table just before a switch
ACTIVE = ("Creating", "Updating", "Deleting", "InService", "RollingBack")


@dataclass
class Fleet:
    """The model servers of one deployment, by variant name (in the config's order)."""

    deployment: dict[str, Any]
    servers: dict[str, list[ModelServer]] = field(default_factory=dict)

    def specs(self) -> list[VariantSpec]:
        """Production variants, then shadow variants (hosting/shadow.py): all get servers."""
        return [VariantSpec.from_document(item) for item in self.deployment["Variants"]
                + (self.deployment.get("Shadows") or [])]

    def all_servers(self) -> list[ModelServer]:
        return [server for servers in self.servers.values() for server in servers]


class EndpointController:
    def __init__(self, platform: "Platform") -> None:
        self.platform = platform
        self._fleets: dict[str, Fleet] = {}  # endpoint name (lower) -> what serves
        self._standby: dict[str, Fleet] = {}  # the other fleet while a deployment runs
        self._lock = threading.Lock()
        self._workers: dict[str, threading.Thread] = {}
        self._again: set[str] = set()
        self._closing = threading.Event()

    # --- the API's side ----------------------------------------------------------------------

    def start(self) -> None:
        shutil.rmtree(self.platform.settings.data_dir / "endpoints", ignore_errors=True)
        self.recover()

    def wake(self, name: str) -> None:
        """Something changed in the endpoint's record: reconcile it (now, or right after
        the reconciliation under way)."""
        key = name.lower()
        with self._lock:
            if self._closing.is_set():
                return
            worker = self._workers.get(key)
            if worker is not None and worker.is_alive():
                self._again.add(key)
                return
            worker = threading.Thread(target=self._work, args=(name,), daemon=True,
                                      name=f"endpoint-{key}")
            self._workers[key] = worker
        worker.start()

    def recover(self) -> None:
        for status in ("InService", "Creating", "Updating", "Deleting", "RollingBack",
                       "UpdateRollbackFailed"):
            token = None
            while True:
                page = self.platform.resources.list(KIND, ListQuery(
                    status_equals=status, descending=False, max_results=100, next_token=token))
                for resource in page.items:
                    log.info("recovering endpoint %s (%s)", resource.name, status)
                    self.wake(resource.name)
                token = page.next_token
                if not token:
                    break

    def shutdown(self) -> None:
        """Stop every model server (the records stay: a restart serves them again)."""
        self._closing.set()
        with self._lock:
            fleets, self._fleets = list(self._fleets.values()), {}
            fleets += list(self._standby.values())
            self._standby = {}
        for fleet in fleets:
            _stop_all(fleet.all_servers(), grace=5.0)

    def servers(self, name: str) -> list[ModelServer]:
        fleets = [self._fleets.get(name.lower()), self._standby.get(name.lower())]
        return [server for fleet in fleets if fleet for server in fleet.all_servers()]

    # --- the worker --------------------------------------------------------------------------

    def _work(self, name: str) -> None:
        key = name.lower()
        while not self._closing.is_set():
            try:
                self._reconcile(name)
            except Exception as error:  # noqa: BLE001 - one endpoint's bug must not stop others
                log.exception("reconciling endpoint %s failed", name)
                self._internal_failure(name, error)
            with self._lock:
                if key in self._again:
                    self._again.discard(key)
                    continue
                self._workers.pop(key, None)
                return

    def _reconcile(self, name: str) -> None:
        resource = self.platform.resources.get(KIND, name)
        key = name.lower()
        if resource is None:
            self._unpublish_and_stop(key)
            return
        document = resource.document
        status = document["EndpointStatus"]
        serving = self._fleets.get(key)
        if status == "Deleting":
            self._unpublish_and_stop(key)
            self.platform.resources.delete(KIND, resource.name)
            log.info("endpoint %s deleted", resource.name)
        elif status == "Creating":
            self._create(resource.name, resource.arn, document[TARGET_KEY])
        elif status in ("Updating", "RollingBack") and serving is None and (
                status == "RollingBack" or document[TARGET_KEY].get("DeploymentConfig")):
            # Recovery of a guarded deployment: serve the old config, then start it over.
            resume(self, resource.name, resource.arn, document)
        elif status == "Updating" and serving is None:
            # Recovery: nothing runs; bring up the target, else what served before.
            self._create(resource.name, resource.arn, document[TARGET_KEY],
                         fallback=document.get(CURRENT_KEY))
        elif status == "Updating" and document[TARGET_KEY].get("Mode") == "adjust":
            self._adjust(resource.name, resource.arn, serving, document[TARGET_KEY])
        elif status == "Updating":
            self._replace(resource.name, resource.arn, serving, document[TARGET_KEY])
        elif status in ("InService", "UpdateRollbackFailed") and serving is None:
            self._create(resource.name, resource.arn, document[CURRENT_KEY], recovering=True)
        elif status == "InService" and any(server.died for server in serving.all_servers()):
            self._heal(resource.name, resource.arn, serving)
        elif status == "Failed" and serving is not None:
            self._unpublish_and_stop(key)

    def _internal_failure(self, name: str, error: Exception) -> None:
        """A bug, not the model: end the deployment under way rather than leave it hanging."""
        reason = f"InternalFailure: modelyard could not deploy the endpoint: {error!r}"
        try:
            resource = self.platform.resources.get(KIND, name)
            if resource is None or resource.document["EndpointStatus"] not in (
                    "Creating", "Updating", "RollingBack"):
                return
            serving = self._fleets.get(name.lower())
            if serving is not None:
                self._record(name, "InService", deployment=serving.deployment, failure=reason)
            else:
                self._record(name, "Failed", deployment=resource.document[TARGET_KEY],
                             failure=reason, serving=False)
        except Exception:  # noqa: BLE001 - the store itself failed; the log has it
            log.exception("could not record the failure of endpoint %s", name)

    # --- the states --------------------------------------------------------------------------

    def _create(self, name: str, arn: str, deployment: dict[str, Any], *,
                fallback: dict[str, Any] | None = None, recovering: bool = False) -> None:
        try:
            fleet = self._start_fleet(name, arn, deployment)
        except StartFailed as error:
            if fallback is not None:
                try:
                    fleet = self._start_fleet(name, arn, fallback)
                except StartFailed:
                    pass
                else:
                    self._shift(name, arn, fleet)
                    self._record(name, "InService", deployment=fallback,
                                 failure=f"Updating the endpoint failed; it still serves the "
                                         f"previous endpoint configuration. {error}")
                    return
            reason = str(error)
            if recovering:
                reason = ("The modelyard server restarted and the endpoint's model servers "
                          f"could not be started again: {reason}")
            self._record(name, "Failed", deployment=deployment, failure=reason, serving=False)
            return
        self._shift(name, arn, fleet)
        self._record(name, "InService", deployment=deployment)
        log.info("endpoint %s in service", name)

    def _replace(self, name: str, arn: str, old: Fleet, deployment: dict[str, Any]) -> None:
        if deployment.get("DeploymentConfig"):
            run_guarded(self, name, arn, old, deployment)
            return
        try:
            new = self._start_fleet(name, arn, deployment)
        except StartFailed as error:
            self._record(name, "InService", deployment=old.deployment,
                         failure=f"Updating the endpoint failed; it still serves the previous "
                                 f"endpoint configuration. {error}")
            return
        self._shift(name, arn, new)
        self._record(name, "InService", deployment=deployment)
        self._drain(old.all_servers())
        _stop_all(old.all_servers())

    def _adjust(self, name: str, arn: str, fleet: Fleet, deployment: dict[str, Any]) -> None:
        started: list[ModelServer] = []
        surplus: list[ModelServer] = []
        servers: dict[str, list[ModelServer]] = {}
        try:
            for spec in Fleet(deployment).specs():
                have = list(fleet.servers.get(spec.name, []))
                more = [self._new_server(name, arn, spec)
                        for _ in range(max(0, spec.instance_count - len(have)))]
                for server in more:
                    started.append(server)
                    server.start()
                keep = have[:spec.instance_count] + more
                surplus.extend(have[spec.instance_count:])
                servers[spec.name] = keep
        except StartFailed as error:
            _stop_all(started)
            self._record(name, "InService", deployment=fleet.deployment,
                         failure=f"Changing the instance count failed: {error}")
            return
        new = Fleet(deployment, servers)
        self._shift(name, arn, new)
        self._record(name, "InService", deployment=deployment)
        self._drain(surplus)
        _stop_all(surplus)

    def _heal(self, name: str, arn: str, fleet: Fleet) -> None:
        """Replace instances that died while serving (as SageMaker replaces unhealthy
        instances): stop routing to them at once, then start and publish replacements."""
        dead = [server for server in fleet.all_servers() if server.died]
        survivors = {variant: [server for server in servers if server not in dead]
                     for variant, servers in fleet.servers.items()}
        self._shift(name, arn, Fleet(fleet.deployment, survivors))
        healed = {variant: list(servers) for variant, servers in survivors.items()}
        problem = None
        for server in dead:
            log.warning("endpoint %s: instance %s died; replacing it", name, server.instance_id)
            server.stop(grace_seconds=1.0)
            replacement = self._new_server(name, arn, server.spec)
            try:
                replacement.start()
            except StartFailed as error:
                problem = f"An instance stopped and its replacement could not start: {error}"
                continue
            healed[server.spec.name].append(replacement)
        self._shift(name, arn, Fleet(fleet.deployment, healed))
        if problem:
            now = self.platform.clock.now()
            try:
                self.platform.resources.update(
                    KIND, name, lambda resource: {**resource.document, "FailureReason": problem},
                    now=now, missing=lambda: _Gone())
            except _Gone:
                pass

    # --- the steps ---------------------------------------------------------------------------

    def _start_fleet(self, name: str, arn: str, deployment: dict[str, Any]) -> Fleet:
        """Start every instance of every variant; all healthy, or none left running."""
        fleet = Fleet(deployment)
        try:
            for spec in fleet.specs():
                fleet.servers[spec.name] = []
                for _ in range(spec.instance_count):
                    if self._closing.is_set():
                        raise StartFailed("The modelyard server is shutting down.")
                    server = self._new_server(name, arn, spec)
                    fleet.servers[spec.name].append(server)
                    server.start()
        except StartFailed:
            _stop_all(fleet.all_servers(), grace=5.0)
            raise
        return fleet

    def _new_server(self, name: str, arn: str, spec: VariantSpec) -> ModelServer:
        server = ModelServer(self.platform, name, arn, spec)
        server.on_exit = lambda _: self.wake(name)
        return server

    def _shift(self, name: str, arn: str, fleet: Fleet, *, blue: Fleet | None = None,
               share: float = 1.0) -> None:
        """Route all traffic to ``fleet`` (one atomic swap of the live table) -- or, during a
        guarded deployment (hosting/deployment.py), ``share`` of it to ``fleet`` and the rest
        to ``blue``."""
        live = live_variants(fleet)
        variants = tuple(live[item["VariantName"]] for item in fleet.deployment["Variants"])
        if blue is not None and share < 1.0:
            old = live_variants(blue)
            variants = mixed(variants, share) + mixed(
                tuple(old[item["VariantName"]] for item in blue.deployment["Variants"]),
                1.0 - share)
        capture = live_capture(fleet.deployment.get("DataCaptureConfig"))
        with self._lock:
            self._fleets[name.lower()] = fleet
            if blue is not None:
                self._standby[name.lower()] = blue
            else:
                self._standby.pop(name.lower(), None)
        self.platform.live_endpoints.publish(LiveEndpoint(
            name, arn, variants, capture, shadows=live_shadows(fleet.deployment, live)))

    def _keep_standby(self, name: str, fleet: Fleet) -> None:
        """``fleet`` runs beside what serves (a deployment's green or blue fleet)."""
        with self._lock:
            self._standby[name.lower()] = fleet

    def _forget_standby(self, name: str) -> None:
        with self._lock:
            self._standby.pop(name.lower(), None)

    def _stop_fleet_unless_serving(self, name: str, fleet: Fleet) -> None:
        """A deployment ended early (deleted, shutting down): stop ``fleet`` unless the
        router still sends to it (then Deleting or shutdown stops it)."""
        with self._lock:
            serving = self._fleets.get(name.lower()) is fleet
            if not serving and self._standby.get(name.lower()) is fleet:
                self._standby.pop(name.lower())
        if not serving and not self._closing.is_set():
            _stop_all(fleet.all_servers(), grace=5.0)

    def _stop_servers(self, servers: list[ModelServer]) -> None:
        _stop_all(servers)

    def _drain(self, servers: list[ModelServer]) -> None:
        """Wait (bounded) until the runtime has no request in flight on ``servers``."""
        time.sleep(SWITCH_GRACE_SECONDS)
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            if all(server.instance is None or server.instance.in_flight <= 0
                   for server in servers):
                return
            time.sleep(0.05)

    def _unpublish_and_stop(self, key: str) -> None:
        self.platform.live_endpoints.remove(key)
        with self._lock:
            fleet = self._fleets.pop(key, None)
            standby = self._standby.pop(key, None)
        servers = [server for each in (fleet, standby) if each for server in each.all_servers()]
        if servers:
            self._drain(servers)
            _stop_all(servers)

    def _record(self, name: str, status: str, *, deployment: dict[str, Any],
                failure: str | None = None, serving: bool = True) -> None:
        """Write the endpoint's status and what serves (as DescribeEndpoint shows it)."""
        now = self.platform.clock.now()

        def change(resource) -> dict[str, Any]:  # noqa: ANN001 - Resource
            document = dict(resource.document)
            if document.get("EndpointStatus") == "Deleting":
                return {**document, "__status__": "Deleting"}  # a delete came meanwhile
            document["EndpointStatus"] = status
            document["__status__"] = status
            document["LastModifiedTime"] = now
            document.pop(TARGET_KEY, None)
            document.pop("PendingDeploymentSummary", None)
            if failure:
                document["FailureReason"] = failure[:1024]
            else:
                document.pop("FailureReason", None)
            if not serving:
                document["ProductionVariants"] = variant_summaries(None, deployment, None, now)
                shadows = shadow_summaries(None, deployment, None, now)
            else:
                document[CURRENT_KEY] = deployment
                document["EndpointConfigName"] = deployment["EndpointConfigName"]
                document["ProductionVariants"] = variant_summaries(deployment, None, None, now)
                shadows = shadow_summaries(deployment, None, None, now)
                capture = describe_capture(deployment.get("DataCaptureConfig"))
                document.pop("DataCaptureConfig", None)
                if capture:
                    document["DataCaptureConfig"] = capture
            document.pop("ShadowProductionVariants", None)
            if shadows:
                document["ShadowProductionVariants"] = shadows
            return document

        try:
            self.platform.resources.update(KIND, name, change, now=now,
                                           missing=lambda: _Gone())
        except _Gone:
            self._unpublish_and_stop(name.lower())


class _Gone(Exception):
    """The endpoint was deleted while the controller worked on it."""


def _stop_all(servers: list[ModelServer], grace: float | None = None) -> None:
    threads = [threading.Thread(target=server.stop, kwargs={} if grace is None else
                                {"grace_seconds": grace}, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def live_variants(fleet: Fleet) -> dict[str, LiveVariant]:
    """The router's view of each variant of ``fleet`` (production and shadow), by name."""
    return {spec.name: LiveVariant(
        spec.name, spec.weight,
        tuple(server.instance for server in fleet.servers.get(spec.name, [])
              if server.instance is not None),
        spec.model_name) for spec in fleet.specs()}


# --- how DescribeEndpoint shows a deployment ------------------------------------------------


def variant_summaries(current: dict[str, Any] | None, target: dict[str, Any] | None,
                      status: str | None, now: float) -> list[dict[str, Any]]:
    """ProductionVariantSummary list: Current* from what serves, Desired* from the target
    (or what serves), VariantStatus while a deployment is under way."""
    serving = {item["VariantName"]: item for item in (current or {}).get("Variants", [])}
    wanted = (target or current or {}).get("Variants", [])
    summaries = []
    for item in wanted:
        now_serving = serving.get(item["VariantName"])
        summary: dict[str, Any] = {
            "VariantName": item["VariantName"],
            "DesiredWeight": item["Weight"],
            "DesiredInstanceCount": item["InstanceCount"],
        }
        if now_serving is not None:
            summary["CurrentWeight"] = now_serving["Weight"]
            summary["CurrentInstanceCount"] = now_serving["InstanceCount"]
            summary["DeployedImages"] = [{
                "SpecifiedImage": now_serving["Container"]["Image"],
                "ResolvedImage": now_serving["Container"]["Image"],
                "ResolutionTime": now_serving.get("DeployedTime", now),
            }]
        if status:
            summary["VariantStatus"] = [{"Status": status, "StartTime": now,
                                         "StatusMessage": f"{status} the variant"}]
        summaries.append(summary)
    return summaries


def describe_capture(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """DescribeEndpoint's DataCaptureConfigSummary for an endpoint config's DataCaptureConfig."""
    if not config:
        return None
    enabled = config.get("EnableCapture", True)
    return {
        "EnableCapture": enabled,
        "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": config["InitialSamplingPercentage"],
        "DestinationS3Uri": config["DestinationS3Uri"],
        "KmsKeyId": config.get("KmsKeyId", ""),
    }


def live_capture(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the runtime's capture needs: the whole config plus the Describe summary."""
    summary = describe_capture(config)
    if not summary or not summary["EnableCapture"]:
        return None
    return {**config, **summary}
