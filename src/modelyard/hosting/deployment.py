"""Deployment guardrails: blue/green traffic shifting with bakes, rolling updates, auto-rollback.

``UpdateEndpoint`` with a ``DeploymentConfig`` (services/endpoints.py checks it with
hosting/deployment_config.py and stores it in the target deployment) makes the controller's
``_replace`` hand the update to ``run_guarded`` here:

- **BlueGreenUpdatePolicy**: the green fleet starts whole beside the blue one, then traffic
  moves in steps -- ``ALL_AT_ONCE`` one step, ``CANARY`` the canary then the rest, ``LINEAR``
  equal steps -- each step followed by a bake of ``WaitIntervalInSeconds``. After the last
  bake the blue fleet keeps running ``TerminationWaitInSeconds`` (no rollback then), is
  drained and stopped, and the endpoint is InService on the new config.
- **RollingUpdatePolicy**: batches of ``MaximumBatchSize`` new instances start, take their
  share of traffic while as many old instances leave the router (drained, then stopped), and
  bake; capacity never drops below the old instance count.
- **AutoRollbackConfiguration**: during every bake each named alarm is read; one in ``ALARM``
  (or ``MaximumExecutionTimeoutInSeconds`` passing) sends the endpoint ``RollingBack``: all
  traffic returns to the blue fleet (rolling: old instances start again in batches of
  ``RollbackMaximumBatchSize``), the green one is drained and stopped, and the endpoint is
  InService on the old config with a FailureReason naming the alarm -- or
  ``UpdateRollbackFailed`` when the old capacity cannot be brought back.

Traffic shares are exact: the router (controller ``_shift`` with ``blue`` and ``share``)
publishes both fleets' variants with their weights scaled by the share, so a 10 % canary
takes 10 % of the requests whatever the instance counts. A shift is one atomic swap of the
live table; requests already routed finish on the instance that took them (drain before
stop), so no request fails because of a shift. Bakes and waits follow ``platform.clock``
(looked at every ``POLL_SECONDS``), so tests move time with the clock offset file.
DescribeEndpoint shows each step in ``PendingDeploymentSummary`` (``VariantStatus``
Creating / ActivatingTraffic / Baking / Deleting) and every step is sent to EventBridge as
"SageMaker Endpoint Deployment State Change". A restart during a deployment serves the old
config again and runs the deployment from its start.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..cloudwatch import alarm_store
from .deployment_config import batch_instances, blue_green_shares, instance_count
from .fleet import ModelServer, StartFailed

if TYPE_CHECKING:
    from .controller import EndpointController, Fleet

log = logging.getLogger("modelyard.hosting")

POLL_SECONDS = 0.25
DEPLOYMENT_EVENT = "SageMaker Endpoint Deployment State Change"
PENDING = "PendingDeploymentSummary"


# --- the controller's side -------------------------------------------------------------------


class Deployment:
    """One guarded update of one endpoint, run in the controller's worker thread."""

    def __init__(self, controller: "EndpointController", name: str, arn: str, old: "Fleet",
                 deployment: dict[str, Any]) -> None:
        self.ctl = controller
        self.platform = controller.platform
        self.name, self.arn, self.old, self.deployment = name, arn, old, deployment
        self.config: dict[str, Any] = deployment.get("DeploymentConfig") or {}
        self.alarms = [item["AlarmName"] for item in
                       (self.config.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
        policy = self.config.get("RollingUpdatePolicy") or self.config.get(
            "BlueGreenUpdatePolicy") or {}
        self.started = self.platform.clock.now()
        limit = policy.get("MaximumExecutionTimeoutInSeconds")
        self.deadline = self.started + limit if limit else None
        self.share = 0.0

    # --- blue/green ------------------------------------------------------------------------

    def blue_green(self) -> None:
        policy = self.config.get("BlueGreenUpdatePolicy") or {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}
        routing = policy["TrafficRoutingConfiguration"]
        wait = int(routing["WaitIntervalInSeconds"])
        instances = instance_count(self.deployment)
        self._progress("Updating", "Creating", f"Launching {instances} instance(s).")
        try:
            new = self.ctl._start_fleet(self.name, self.arn, self.deployment)
        except StartFailed as error:
            self.ctl._record(self.name, "InService", deployment=self.old.deployment,
                             failure=f"Updating the endpoint failed; it still serves the "
                                     f"previous endpoint configuration. {error}")
            self._event()
            return
        self.ctl._keep_standby(self.name, new)
        shares = blue_green_shares(policy, instances)
        for index, share in enumerate(shares):
            what = ("canary" if routing["Type"] == "CANARY" and index == 0 else
                    "full" if share >= 1.0 else f"{share:.0%} of the")
            self._progress("Updating", "ActivatingTraffic",
                           f"Activating traffic on {what} capacity of {instances} instance(s).")
            self.share = share
            self.ctl._shift(self.name, self.arn, new, blue=self.old, share=share)
            self._progress("Updating", "Baking",
                           f"Baking for {wait} seconds (WaitIntervalInSeconds) with traffic "
                           f"enabled on {what} capacity ({share:.0%} of the traffic).")
            problem = self._bake(wait)
            if problem == "gone":
                self.ctl._stop_fleet_unless_serving(self.name, new)
                return
            if problem:
                self._roll_back(new, problem)
                return
        termination = int(policy.get("TerminationWaitInSeconds", 0))
        self._progress("Updating", "Baking",
                       f"Waiting {termination} seconds (TerminationWaitInSeconds) before "
                       "terminating the old fleet.")
        if self._wait(termination, watch_alarms=False) == "gone":
            return
        self._progress("Updating", "Deleting",
                       f"Terminating {len(self.old.all_servers())} instance(s) of the old fleet.")
        self.ctl._forget_standby(self.name)
        self.ctl._drain(self.old.all_servers())
        self.ctl._stop_servers(self.old.all_servers())
        self.ctl._record(self.name, "InService", deployment=self.deployment)
        self._event()

    def _roll_back(self, new: "Fleet", problem: str) -> None:
        reason = self._reason(problem)
        log.warning("endpoint %s: rolling back: %s", self.name, reason)
        if any(server.died for server in self.old.all_servers()):
            self.ctl._record(self.name, "UpdateRollbackFailed", deployment=self.deployment,
                             failure=f"{reason} Rolling back failed: instances of the old "
                                     "fleet stopped; the endpoint serves the new "
                                     "configuration.")
            self.ctl._shift(self.name, self.arn, new)
            self._event()
            return
        self.share = 0.0
        self.ctl._shift(self.name, self.arn, self.old)  # traffic first, then the record
        self._progress("RollingBack", "Deleting", f"Rolled all traffic back to the old fleet: "
                                                 f"{reason}")
        self.ctl._drain(new.all_servers())
        self.ctl._stop_servers(new.all_servers())
        self.ctl._record(self.name, "InService", deployment=self.old.deployment,
                         failure=f"{reason} All traffic was rolled back to the previous "
                                 "endpoint configuration "
                                 f"{self.old.deployment['EndpointConfigName']}.")
        self._event()

    # --- rolling -----------------------------------------------------------------------------

    def rolling(self) -> None:
        from .controller import Fleet

        policy = self.config["RollingUpdatePolicy"]
        wait = int(policy["WaitIntervalInSeconds"])
        batch = batch_instances(policy["MaximumBatchSize"], instance_count(self.deployment))
        green = Fleet(self.deployment)
        green.servers = {spec.name: [] for spec in green.specs()}
        blue = Fleet(self.old.deployment, {variant: list(servers) for variant, servers
                                           in self.old.servers.items()})
        slots = [spec for spec in green.specs() for _ in range(spec.instance_count)]
        self.ctl._keep_standby(self.name, green)
        while slots:
            chunk, slots = slots[:batch], slots[batch:]
            self._progress("Updating", "Updating", f"Launching {len(chunk)} instance(s).",
                           green=green, blue=blue)
            try:
                for spec in chunk:
                    server = self.ctl._new_server(self.name, self.arn, spec)
                    green.servers[spec.name].append(server)
                    server.start()
            except StartFailed as error:
                green.servers[spec.name].remove(server)
                self._roll_back_rolling(green, blue, f"start:{error}")
                return
            leaving = _take(blue, len(chunk) if slots else len(blue.all_servers()))
            self.share = _count(green) / max(1, _count(green) + _count(blue))
            self._progress("Updating", "ActivatingTraffic",
                           f"Activating traffic on {_count(green)} new instance(s).",
                           green=green, blue=blue)
            self.ctl._shift(self.name, self.arn, green, blue=blue, share=self.share)
            self.ctl._drain(leaving)
            self.ctl._stop_servers(leaving)
            self._progress("Updating", "Baking",
                           f"Baking for {wait} seconds (WaitIntervalInSeconds) with traffic "
                           f"enabled on {_count(green)} new instance(s).", green=green, blue=blue)
            problem = self._bake(wait)
            if problem == "gone":
                self.ctl._stop_fleet_unless_serving(self.name, green)
                return
            if problem:
                self._roll_back_rolling(green, blue, problem)
                return
        self.ctl._shift(self.name, self.arn, green)
        self.ctl._record(self.name, "InService", deployment=self.deployment)
        self._event()

    def _roll_back_rolling(self, green: "Fleet", blue: "Fleet", problem: str) -> None:
        reason = self._reason(problem)
        log.warning("endpoint %s: rolling back: %s", self.name, reason)
        policy = self.config["RollingUpdatePolicy"]
        size = policy.get("RollbackMaximumBatchSize") or {"Type": "CAPACITY_PERCENT",
                                                          "Value": 100}
        batch = batch_instances(size, instance_count(self.old.deployment))
        missing = [spec for spec in blue.specs()
                   for _ in range(spec.instance_count - len(blue.servers.get(spec.name, [])))]
        self._progress("RollingBack", "Updating", f"Rolling back: {reason}", green=green, blue=blue)
        while missing:
            chunk, missing = missing[:batch], missing[batch:]
            try:
                for spec in chunk:
                    server = self.ctl._new_server(self.name, self.arn, spec)
                    server.start()
                    blue.servers.setdefault(spec.name, []).append(server)
            except StartFailed as error:
                self.ctl._record(self.name, "UpdateRollbackFailed", deployment=self.deployment,
                                 failure=f"{reason} Rolling back failed: an instance of the "
                                         f"old configuration could not start: {error}"[:1024])
                self._event()
                return
            leaving = _take(green, len(chunk) if missing else len(green.all_servers()))
            total = _count(green) + _count(blue)
            self.ctl._shift(self.name, self.arn, green, blue=blue,
                            share=_count(green) / max(1, total))
            self.ctl._drain(leaving)
            self.ctl._stop_servers(leaving)
        leaving = green.all_servers()
        self.ctl._shift(self.name, self.arn, blue)
        self.ctl._drain(leaving)
        self.ctl._stop_servers(leaving)
        self.ctl._record(self.name, "InService", deployment=self.old.deployment,
                         failure=f"{reason} The rolling update was rolled back to the previous "
                                 "endpoint configuration "
                                 f"{self.old.deployment['EndpointConfigName']}.")
        self._event()

    # --- waiting -----------------------------------------------------------------------------

    def _bake(self, seconds: int) -> str | None:
        return self._wait(seconds, watch_alarms=True)

    def _wait(self, seconds: int, *, watch_alarms: bool) -> str | None:
        """Wait ``seconds`` of platform time; returns None, "gone" (deleted or shutting
        down), "timeout" or "alarm:<name>"."""
        clock = self.platform.clock
        end = clock.now() + seconds
        while True:
            if self.ctl._closing.is_set():
                return "gone"
            resource = self.platform.resources.get("Endpoint", self.name)
            if resource is None or resource.document.get("EndpointStatus") == "Deleting":
                return "gone"
            if watch_alarms:
                for alarm in self.alarms:
                    found = alarm_store.get(self.platform, alarm)
                    if found is not None and found.get("StateValue") == "ALARM":
                        return f"alarm:{alarm}"
            now = clock.now()
            if watch_alarms and self.deadline is not None and now >= self.deadline:
                return "timeout"
            if now >= end:
                return None
            time.sleep(POLL_SECONDS)

    def _reason(self, problem: str) -> str:
        if problem.startswith("alarm:"):
            return (f"The CloudWatch alarm {problem[6:]} of AutoRollbackConfiguration went "
                    "into ALARM during the deployment's baking period.")
        if problem == "timeout":
            return ("The deployment did not finish within MaximumExecutionTimeoutInSeconds "
                    f"({int(self.deadline - self.started) if self.deadline else 0} seconds).")
        return f"Updating the endpoint failed: {problem.split(':', 1)[-1]}"

    # --- what DescribeEndpoint and EventBridge see -------------------------------------------

    def _progress(self, status: str, variant_status: str, message: str,
                  green: "Fleet | None" = None, blue: "Fleet | None" = None) -> None:
        now = self.platform.clock.now()
        share = self.share
        running = (None if green is None else
                   {variant: len(servers) for variant, servers in green.servers.items()})

        def change(resource) -> dict[str, Any]:  # noqa: ANN001 - Resource
            document = dict(resource.document)
            if document.get("EndpointStatus") in ("Deleting", None):
                return document
            document["EndpointStatus"] = status
            document["__status__"] = status
            document["LastModifiedTime"] = now
            previous = document.get(PENDING) or {}
            pending_variants = []
            for item in self.deployment["Variants"]:
                count = (running or {}).get(item["VariantName"])
                pending_variants.append({
                    "VariantName": item["VariantName"],
                    "DeployedImages": [{"SpecifiedImage": item["Container"]["Image"],
                                        "ResolvedImage": item["Container"]["Image"],
                                        "ResolutionTime": self.started}],
                    "CurrentWeight": round(item["Weight"] * share, 6),
                    "DesiredWeight": item["Weight"],
                    "CurrentInstanceCount": (item["InstanceCount"] if count is None
                                             and variant_status != "Creating" else count or 0),
                    "DesiredInstanceCount": item["InstanceCount"],
                    "InstanceType": item["InstanceType"],
                    "VariantStatus": [{"Status": variant_status, "StatusMessage": message[:1024],
                                       "StartTime": now}],
                })
            document[PENDING] = {
                "EndpointConfigName": self.deployment["EndpointConfigName"],
                "StartTime": previous.get("StartTime", self.started),
                "ProductionVariants": pending_variants,
            }
            summaries = []
            for item in self.old.deployment["Variants"]:
                servers = len((blue or self.old).servers.get(item["VariantName"], []))
                summaries.append({
                    "VariantName": item["VariantName"],
                    "CurrentWeight": round(item["Weight"] * (1.0 - share), 6),
                    "DesiredWeight": item["Weight"],
                    "CurrentInstanceCount": servers,
                    "DesiredInstanceCount": item["InstanceCount"],
                    "DeployedImages": [{"SpecifiedImage": item["Container"]["Image"],
                                        "ResolvedImage": item["Container"]["Image"],
                                        "ResolutionTime": item.get("DeployedTime", now)}],
                })
            document["ProductionVariants"] = summaries
            return document

        try:
            self.platform.resources.update("Endpoint", self.name, change, now=now,
                                           missing=lambda: _Gone())
        except _Gone:
            return
        self._event()

    def _event(self) -> None:
        """Send the endpoint as it is now as a Deployment State Change event."""
        try:
            from ..events.bus import put_event
            from ..events.rules import rule_cache

            if not rule_cache(self.platform).has_pattern_rules:
                return
            resource = self.platform.resources.get("Endpoint", self.name)
            if resource is None:
                return
            put_event(self.platform, "aws.sagemaker", DEPLOYMENT_EVENT,
                      event_detail(resource.document), [self.arn])
        except Exception:  # noqa: BLE001 - an event must never stop a deployment
            log.exception("could not send the deployment event of endpoint %s", self.name)


class _Gone(Exception):
    """The endpoint was deleted meanwhile."""


def event_detail(document: dict[str, Any]) -> dict[str, Any]:
    """DescribeEndpoint's document as those events carry it: times in epoch milliseconds,
    the status in capitals (``UPDATING``), Tags as a map."""
    import re

    def millis(value: Any) -> Any:
        return int(value * 1000) if isinstance(value, (int, float)) else value

    def convert(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: convert(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return millis(value) if key.endswith("Time") else value

    detail = {key: convert(value, key) for key, value in document.items()
              if not key.startswith("_") and key != "Tags" and value is not None}
    detail["EndpointStatus"] = re.sub(r"(?<!^)(?=[A-Z])", "_",
                                      document.get("EndpointStatus", "")).upper()
    detail["Tags"] = {tag["Key"]: tag["Value"] for tag in document.get("Tags", [])}
    return detail


def _count(fleet: "Fleet") -> int:
    return len(fleet.all_servers())


def _take(fleet: "Fleet", count: int) -> list[ModelServer]:
    """Remove up to ``count`` servers from ``fleet`` (from its largest variants first)."""
    taken: list[ModelServer] = []
    while len(taken) < count:
        variant = max(fleet.servers, key=lambda key: len(fleet.servers[key]), default=None)
        if variant is None or not fleet.servers[variant]:
            break
        taken.append(fleet.servers[variant].pop(0))
    return taken


def resume(controller: "EndpointController", name: str, arn: str,
           document: dict[str, Any]) -> None:
    """After a restart during a guarded deployment (nothing runs): the old config serves
    again, then the deployment runs from its start; a rollback under way just ends."""
    from .controller import CURRENT_KEY, TARGET_KEY

    current = document.get(CURRENT_KEY)
    if current is None:
        controller._create(name, arn, document[TARGET_KEY])
        return
    try:
        fleet = controller._start_fleet(name, arn, current)
    except StartFailed as error:
        controller._record(name, "Failed", deployment=current, serving=False,
                           failure="The modelyard server restarted during a deployment and the "
                                   f"endpoint's model servers could not be started again: {error}")
        return
    controller._shift(name, arn, fleet)
    if document["EndpointStatus"] == "RollingBack":
        controller._record(name, "InService", deployment=current,
                           failure=document.get("FailureReason") or "The deployment was rolled "
                           "back to the previous endpoint configuration.")
        return
    run_guarded(controller, name, arn, fleet, document[TARGET_KEY])


def run_guarded(controller: "EndpointController", name: str, arn: str, old: "Fleet",
                deployment: dict[str, Any]) -> None:
    """The controller's ``_replace`` for a deployment with a DeploymentConfig."""
    run = Deployment(controller, name, arn, old, deployment)
    if run.config.get("RollingUpdatePolicy"):
        run.rolling()
    else:
        run.blue_green()
