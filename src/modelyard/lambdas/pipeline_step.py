"""The pipeline LambdaStep: run the function by its FunctionArn with the step's arguments.

The invocation runs on a small thread pool so the pipeline engine's thread only starts
it and later polls it (the step is ``Executing`` meanwhile, like a job step). When it
returns, the handler's result (a JSON object) gives the step's ``OutputParameters``, typed
as the step declares them (``OutputName`` / ``OutputType``, as the SDK's ``LambdaOutput``
writes them), for ``Get: Steps.<name>.OutputParameters['<OutputName>']``. A function error
or a missing output fails the step with a reason that says which.

Invocations in flight are kept in memory: after a server restart a step still Executing
is invoked again (at least once, as a retried step would be).
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from . import functions

if TYPE_CHECKING:
    from ..pipelines.definition import StepSpec
    from ..pipelines.steps import StepResult
    from ..platform import Platform

_pool = ThreadPoolExecutor(4, thread_name_prefix="lambda-step")
_running: dict[str, Future] = {}
_lock = threading.Lock()


def start(platform: "Platform", spec: "StepSpec", arguments: Any) -> "StepResult":
    from ..pipelines.steps import StepResult

    arn = spec.raw.get("FunctionArn", "")
    metadata = {"Lambda": {"Arn": arn, "OutputParameters": []}}
    try:
        functions.find(platform, arn)
    except AwsError as error:
        return StepResult("Failed", metadata, failure_reason=f"{error.code}: {error.message}")
    payload = json.dumps(arguments if arguments is not None else {}, default=str)
    job = {"kind": "Lambda", "name": str(uuid.uuid4()), "function": arn, "payload": payload}
    _submit(platform, job)
    return StepResult("Executing", metadata, job=job)


def check(platform: "Platform", spec: "StepSpec", job: dict[str, str],
          metadata: dict[str, Any]) -> "StepResult":
    from ..pipelines.steps import StepResult

    with _lock:
        future = _running.get(job["name"])
        if future is not None and future.done():
            del _running[job["name"]]
    if future is None:  # the server restarted while the function ran
        _submit(platform, job)
        return StepResult("Executing", metadata, job=job)
    if not future.done():
        return StepResult("Executing", metadata, job=job)
    arn = job["function"]
    try:
        result = future.result()
    except AwsError as error:
        return StepResult("Failed", metadata, failure_reason=(
            f"Lambda function {arn} could not be invoked: {error.code}: {error.message}"),
            job=job)
    except Exception as error:  # noqa: BLE001 - reported on the step, not raised
        return StepResult("Failed", metadata, failure_reason=(
            f"Lambda function {arn} could not be invoked: {error}"), job=job)
    body = bytes(result.get("Payload") or b"")
    try:
        output = json.loads(body) if body else None
    except ValueError:
        output = None
    if result.get("FunctionError"):
        detail = output if isinstance(output, dict) else {}
        return StepResult("Failed", metadata, failure_reason=(
            f"Lambda function {arn} failed: {detail.get('errorType', 'Error')}: "
            f"{detail.get('errorMessage', body.decode('utf-8', 'replace')[:500])}"), job=job)
    return _outputs(spec, job, metadata, output)


def _outputs(spec: "StepSpec", job: dict[str, str], metadata: dict[str, Any],
             output: Any) -> "StepResult":
    from ..pipelines.parameters import convert_value
    from ..pipelines.steps import StepResult

    declared = [item for item in spec.raw.get("OutputParameters") or [] if isinstance(item, dict)]
    if declared and not isinstance(output, dict):
        return StepResult("Failed", metadata, failure_reason=(
            f"Lambda function {job['function']} returned {type(output).__name__}, not a JSON "
            "object holding the step's OutputParameters "
            f"{', '.join(str(item.get('OutputName')) for item in declared)}."), job=job)
    typed: dict[str, Any] = {}
    listed: list[dict[str, str]] = []
    for item in declared:
        name, kind = str(item.get("OutputName")), item.get("OutputType", "String")
        if name not in output:
            return StepResult("Failed", metadata, failure_reason=(
                f"Lambda function {job['function']} returned no output {name!r}; it returned "
                f"{', '.join(sorted(map(str, output))) or 'an empty object'}."), job=job)
        value = output[name]
        if kind == "String" and not isinstance(value, str):
            value = json.dumps(value)
        try:
            typed[name] = convert_value(value, kind)
        except (ValueError, TypeError):
            return StepResult("Failed", metadata, failure_reason=(
                f"Lambda output {name} is {json.dumps(value)}, not the {kind} the step "
                "declares."), job=job)
        listed.append({"Name": name, "Value": value if isinstance(value, str)
                       else json.dumps(value)})
    metadata = {"Lambda": {**metadata.get("Lambda", {}), "OutputParameters": listed}}
    return StepResult("Succeeded", metadata, {"OutputParameters": typed}, job=job)


def _submit(platform: "Platform", job: dict[str, str]) -> None:
    from .invoke import invoke

    future = _pool.submit(invoke, platform, job["function"], job["payload"].encode())
    with _lock:
        _running[job["name"]] = future
    future.add_done_callback(lambda _: platform.pipelines.wake())
