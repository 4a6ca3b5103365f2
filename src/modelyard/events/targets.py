"""Rule targets: what each kind of target accepts, what it receives, how it is delivered.

A target's input is computed when its rule matches (``target_input``): the whole event,
a constant ``Input``, the part of the event ``InputPath`` selects, or an
``InputTransformer``'s template filled from the event. The delivery (one durable outbox
entry per event and target, see ``bus``) then hands that input to the target:

- Lambda function ARNs: an asynchronous invoke (``modelyard.lambdas.invoke.invoke_async``),
  keyed by the delivery so a re-run delivery queues nothing new;
- SNS topic ARNs: ``modelyard.sns.publish.publish`` with the input as the message;
- SageMaker pipeline ARNs: StartPipelineExecution with the target's
  ``SageMakerPipelineParameters`` and a ClientRequestToken derived from the delivery key,
  so a delivery re-run after a crash starts the pipeline once.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.deliveries import DeliveryFailed

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.outbox import Delivery

LAMBDA, SNS, PIPELINE = "events-lambda", "events-sns", "events-pipeline"
_ARN_KINDS = (
    (re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$"),
     LAMBDA),
    (re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$"), SNS),
    (re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:pipeline/[A-Za-z0-9-]+$"), PIPELINE),
)
PREDEFINED = ("aws.events.rule-arn", "aws.events.rule-name", "aws.events.event.ingestion-time",
              "aws.events.event", "aws.events.event.json")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_PATH = re.compile(r"^\$(\.[A-Za-z0-9_\-/]+|\.\*|\[\d+\]|\[\*\]|\['[^']*'\])*$")


def target_kind(arn: str) -> str | None:
    """The delivery kind of a target ARN modelyard can deliver to; None otherwise."""
    for pattern, kind in _ARN_KINDS:
        if pattern.match(arn):
            return kind
    return None


def check_target(target: dict[str, Any]) -> str | None:
    """Why PutTargets refuses this target (a FailedEntries message), or None."""
    arn = target["Arn"]
    kind = target_kind(arn)
    if kind is None:
        return (f"Target {target['Id']}: modelyard delivers to Lambda functions "
                "(arn:aws:lambda:<region>:<account>:function:<name>), SNS topics "
                "(arn:aws:sns:<region>:<account>:<topic>) and SageMaker pipelines "
                f"(arn:aws:sagemaker:<region>:<account>:pipeline/<name>), not to {arn}.")
    given = [member for member in ("Input", "InputPath", "InputTransformer") if member in target]
    if len(given) > 1:
        return (f"Target {target['Id']}: give only one of Input, InputPath and "
                f"InputTransformer, not {' and '.join(given)}.")
    if "Input" in target:
        try:
            json.loads(target["Input"])
        except ValueError:
            return f"Target {target['Id']}: Input is not valid JSON text."
    if "InputPath" in target and not _PATH.match(target["InputPath"]):
        return (f"Target {target['Id']}: InputPath {target['InputPath']!r} is not a JSON path "
                "EventBridge supports (e.g. $.detail or $.detail.state).")
    transformer = target.get("InputTransformer")
    if transformer is not None:
        for name, path in transformer.get("InputPathsMap", {}).items():
            if name in PREDEFINED or name.startswith("aws."):
                return (f"Target {target['Id']}: InputPathsMap may not define {name!r}: names "
                        "starting with aws. are reserved.")
            if not _PATH.match(path):
                return (f"Target {target['Id']}: InputPathsMap {name!r} is {path!r}, not a "
                        "JSON path EventBridge supports (e.g. $.detail.state).")
    return None


def json_path(document: Any, path: str) -> tuple[bool, Any]:
    """Evaluate EventBridge's JSON path subset; (found, value)."""
    tokens = re.findall(r"\.([A-Za-z0-9_\-/]+)|\.(\*)|\[(\d+)\]|\[(\*)\]|\['([^']*)'\]", path[1:])
    current: list[Any] = [document]
    wildcard = False
    for name, star, index, star2, quoted in tokens:
        following: list[Any] = []
        for value in current:
            if star or star2:
                wildcard = True
                following.extend(value.values() if isinstance(value, dict)
                                 else value if isinstance(value, list) else [])
            elif index:
                if isinstance(value, list) and int(index) < len(value):
                    following.append(value[int(index)])
            else:
                key = name or quoted
                if isinstance(value, dict) and key in value:
                    following.append(value[key])
        current = following
    if wildcard:
        return True, current
    return (True, current[0]) if current else (False, None)


def target_input(target: dict[str, Any], event: dict[str, Any], rule_name: str,
                 rule_arn: str) -> str:
    """The text the target receives for this event (JSON, or a template's text)."""
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        found, value = json_path(event, target["InputPath"])
        return json.dumps(value if found else None)
    transformer = target.get("InputTransformer")
    if transformer is None:
        return json.dumps(event)
    values: dict[str, tuple[bool, Any]] = {
        name: json_path(event, path) for name, path in transformer.get("InputPathsMap", {}).items()
    }
    ingestion = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event_without_detail = {key: value for key, value in event.items() if key != "detail"}
    values.update({
        "aws.events.rule-arn": (True, rule_arn),
        "aws.events.rule-name": (True, rule_name),
        "aws.events.event.ingestion-time": (True, ingestion),
        "aws.events.event": (True, event_without_detail),
        "aws.events.event.json": (True, event),
    })
    return fill_template(transformer["InputTemplate"], values)


def fill_template(template: str, values: dict[str, tuple[bool, Any]]) -> str:
    """Replace ``<name>`` placeholders as EventBridge does.

    Inside a JSON string (between quotes) a value is inserted as text: strings as they are
    (escaped for JSON), objects and arrays without their inner quotes. Outside quotes it
    is inserted as JSON (a string gains quotes). A variable whose path found nothing is
    ``null`` outside quotes and empty inside them. Unknown placeholders stay as written.
    """
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(template):
        char = template[index]
        if char == "\\" and in_string:
            out.append(template[index:index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "<":
            placeholder = _PLACEHOLDER.match(template, index)
            if placeholder and placeholder.group(1) in values:
                found, value = values[placeholder.group(1)]
                out.append(_inline(found, value) if in_string else _as_json(found, value))
                index = placeholder.end()
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _inline(found: bool, value: Any) -> str:
    if not found or value is None:
        return "" if not found else "null"
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")).replace('"', "")
    return json.dumps(value)


def _as_json(found: bool, value: Any) -> str:
    return json.dumps(value) if found else "null"


def pipeline_parameters(target: dict[str, Any]) -> list[dict[str, str]]:
    """The target's SageMakerPipelineParameters, as StartPipelineExecution takes them."""
    return [{"Name": item["Name"], "Value": item["Value"]} for item in
            target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])]


# --- delivery handlers ---------------------------------------------------------------------


def _fail_on_client_error(error: AwsError, what: str) -> None:
    if error.sender_fault:
        raise DeliveryFailed(f"{what}: {error.code}: {error.message}") from None
    raise error


def deliver_lambda(platform: "Platform", delivery: "Delivery") -> None:
    from ..lambdas.invoke import invoke_async

    payload = delivery.payload
    try:
        invoke_async(platform, payload["arn"], payload["input"].encode(), key=delivery.key)
    except AwsError as error:
        _fail_on_client_error(error, f"invoking {payload['arn']}")


def deliver_sns(platform: "Platform", delivery: "Delivery") -> None:
    from ..sns.publish import publish

    payload = delivery.payload
    try:
        publish(platform, payload["arn"], payload["input"])
    except AwsError as error:
        _fail_on_client_error(error, f"publishing to {payload['arn']}")


def deliver_pipeline(platform: "Platform", delivery: "Delivery") -> None:
    from ..dispatch import call

    payload = delivery.payload
    name = payload["arn"].rsplit(":pipeline/", 1)[1]
    request: dict[str, Any] = {
        "PipelineName": name,
        "ClientRequestToken": hashlib.sha256(delivery.key.encode()).hexdigest()[:64],
    }
    if payload.get("parameters"):
        request["PipelineParameters"] = payload["parameters"]
    try:
        call(platform, "sagemaker", "StartPipelineExecution", request, caller="events")
    except AwsError as error:
        _fail_on_client_error(error, f"starting pipeline {name}")


HANDLERS = {LAMBDA: deliver_lambda, SNS: deliver_sns, PIPELINE: deliver_pipeline}
