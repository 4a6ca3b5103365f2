"""Lambda (botocore ``lambda``, REST-JSON): functions, their code, policies and Invoke.

Functions are Python (python3.10-3.13, run with the server's own Python) from a zip,
given inline (``ZipFile``) or as an object in modelyard's S3. The handler is checked when
the function runs, as Lambda does: a bad one answers Invoke with ``Runtime.ImportModuleError``
or ``Runtime.HandlerNotFound``. Running them is ``modelyard.lambdas`` (warm sandboxed
workers, logs in ``/aws/lambda/<name>``, Event invocations through the durable outbox).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import uuid
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..lambdas import functions
from ..lambdas.functions import KIND, LATEST, invalid
from ..lambdas.invoke import invoke, invoke_async, runtime
from ..store.resources import ListQuery, Resource

DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
DEFAULT_MAX_ITEMS = 50
_NO_POLICY = "The resource you requested does not exist."


def _checked_limits(request: dict[str, Any]) -> None:
    for member, low, high in (("Timeout", 1, 900), ("MemorySize", 128, 10240)):
        value = request.get(member)
        if value is not None and not low <= value <= high:
            bound = (f"less than or equal to {high}" if value > high
                     else f"greater than or equal to {low}")
            raise AwsError("ValidationException", (
                f"1 validation error detected: Value '{value}' at '{member[0].lower()}"
                f"{member[1:]}' failed to satisfy constraint: Member must have value {bound}"))
    if request.get("Layers"):
        raise invalid("modelyard does not run Lambda layers; put the layer's packages into "
                      "the function's zip.")
    functions.check_environment(request.get("Environment"))


def create_function(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name, qualifier = functions.parse_reference(ctx.platform, request["FunctionName"])
    if qualifier:
        raise invalid("A function name with a qualifier cannot be created; drop the "
                      f":{qualifier} suffix.")
    if request.get("PackageType", "Zip") != "Zip":
        functions.read_code(ctx.platform, request)  # refuses images with the reason
    functions.check_runtime(request.get("Runtime"), request.get("Handler"))
    _checked_limits(request)
    if ctx.platform.resources.get(KIND, name) is not None:
        raise _exists(name)
    data, source = functions.read_code(ctx.platform, request)
    code = functions.store_code(ctx.platform, data, source)
    arn = functions.function_arn(ctx.platform, name)
    document: dict[str, Any] = {
        "FunctionName": name, "FunctionArn": arn, "Runtime": request["Runtime"],
        "Role": request["Role"], "Handler": request["Handler"], "CodeSize": code["size"],
        "Description": request.get("Description", ""),
        "Timeout": request.get("Timeout", DEFAULT_TIMEOUT),
        "MemorySize": request.get("MemorySize", DEFAULT_MEMORY),
        "LastModified": functions.last_modified(ctx.now), "CodeSha256": code["sha256"],
        "Version": LATEST, "TracingConfig": request.get("TracingConfig", {"Mode": "PassThrough"}),
        "RevisionId": str(uuid.uuid4()), "State": "Active", "LastUpdateStatus": "Successful",
        "PackageType": "Zip", "Architectures": request.get("Architectures", ["x86_64"]),
        "EphemeralStorage": request.get("EphemeralStorage", {"Size": 512}),
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
        "_code": code, "_tags": request.get("Tags", {}), "_versions": {},
    }
    for member in ("Environment", "VpcConfig", "DeadLetterConfig", "KMSKeyArn"):
        if request.get(member):
            document[member] = request[member]
    ctx.platform.resources.create(KIND, name, arn, document, now=ctx.now, status="Active",
                                  already_exists=lambda: _exists(name))
    runtime(ctx.platform).forget(name)
    if request.get("Publish"):
        resource = ctx.platform.resources.get(KIND, name)
        return _publish(ctx, resource, request.get("Description"))
    return {key: value for key, value in document.items() if not key.startswith("_")}


def _exists(name: str) -> AwsError:
    return AwsError("ResourceConflictException", f"Function already exist: {name}", status=409,
                    Type="User")


def _publish(ctx: RequestContext, resource: Resource, description: str | None) -> dict[str, Any]:
    """Snapshot $LATEST as the next numbered version (or return the last, if unchanged)."""
    result: dict[str, Any] = {}

    def change(current: Resource) -> dict[str, Any]:
        document = dict(current.document)
        versions = dict(document.get("_versions", {}))
        latest = max(versions.values(), key=lambda v: int(v["Version"]), default=None)
        if latest is not None and latest["CodeSha256"] == document["CodeSha256"] and all(
                latest.get(k) == document.get(k) for k in ("Handler", "Runtime", "Timeout",
                                                           "MemorySize", "Environment", "Role")):
            result.update(latest)
            return document
        number = str(len(versions) + 1)
        snapshot = {key: value for key, value in document.items()
                    if not key.startswith("_") or key == "_code"}
        snapshot.update(Version=number, FunctionArn=f"{document['FunctionArn']}:{number}",
                        RevisionId=str(uuid.uuid4()))
        if description is not None:
            snapshot["Description"] = description
        versions[number] = snapshot
        document["_versions"] = versions
        result.update(snapshot)
        return document

    ctx.platform.resources.update(KIND, resource.name, change, now=ctx.now,
                                  missing=lambda: functions.not_found(ctx.platform, resource.name))
    runtime(ctx.platform).forget(resource.name)
    return {key: value for key, value in result.items() if not key.startswith("_")}


def publish_version(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"])
    _check_revision(resource, request)
    return _publish(ctx, resource, request.get("Description"))


def get_function(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"], request.get("Qualifier"))
    _, qualifier = functions.parse_reference(ctx.platform, request["FunctionName"],
                                             request.get("Qualifier"))
    document = (resource.document if qualifier in (None, LATEST)
                else resource.document["_versions"][qualifier])
    result: dict[str, Any] = {"Configuration": functions.configuration(resource, qualifier),
                              "Code": _code_location(ctx, document["_code"])}
    if resource.document.get("_tags"):
        result["Tags"] = resource.document["_tags"]
    return result


def _code_location(ctx: RequestContext, code: dict[str, Any]) -> dict[str, Any]:
    """Where the package can be downloaded: a presigned URL of its S3 object, when it
    came from S3 (a package uploaded as ZipFile has no URL in modelyard)."""
    source = code.get("source", {})
    located = {"RepositoryType": "S3"}
    if source.get("S3Bucket"):
        client = _presigner(ctx.settings.endpoint_url.replace("0.0.0.0", "127.0.0.1"),
                            ctx.settings.credentials.access_key_id,
                            ctx.settings.credentials.secret_access_key, ctx.region)
        located["Location"] = client.generate_presigned_url(
            "get_object", Params={"Bucket": source["S3Bucket"], "Key": source["S3Key"]},
            ExpiresIn=600)
    return located


@functools.lru_cache(maxsize=4)
def _presigner(endpoint: str, key: str, secret: str, region: str) -> Any:
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
        aws_secret_access_key=secret)


def get_function_configuration(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"], request.get("Qualifier"))
    _, qualifier = functions.parse_reference(ctx.platform, request["FunctionName"],
                                             request.get("Qualifier"))
    return functions.configuration(resource, qualifier)


def list_functions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    page = ctx.platform.resources.list(KIND, ListQuery(
        sort_by="name", descending=False, next_token=request.get("Marker"),
        max_results=request.get("MaxItems", DEFAULT_MAX_ITEMS)))
    result: dict[str, Any] = {"Functions": [functions.configuration(item) for item in page.items]}
    if page.next_token:
        result["NextMarker"] = page.next_token
    return result


def _check_revision(resource: Resource, request: dict[str, Any]) -> None:
    wanted = request.get("RevisionId")
    if wanted and wanted != resource.document["RevisionId"]:
        raise AwsError("PreconditionFailedException", (
            "The Revision Id provided does not match the latest Revision Id. Call the "
            "GetFunction/GetAlias API to retrieve the latest Revision Id"), status=412)


def _update(ctx: RequestContext, request: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"])
    _check_revision(resource, request)

    def change(current: Resource) -> dict[str, Any]:
        document = {**current.document, **changes}
        document.update(RevisionId=str(uuid.uuid4()), LastModified=functions.last_modified(ctx.now),
                        LastUpdateStatus="Successful", State="Active")
        return {key: value for key, value in document.items() if value is not None}

    updated = ctx.platform.resources.update(
        KIND, resource.name, change, now=ctx.now,
        missing=lambda: functions.not_found(ctx.platform, resource.name))
    runtime(ctx.platform).retire(resource.name)
    if request.get("Publish"):
        return _publish(ctx, updated, None)
    return functions.configuration(updated)


def update_function_code(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    data, source = functions.read_code(ctx.platform, request)
    code = functions.store_code(ctx.platform, data, source)
    if request.get("DryRun"):
        resource = functions.find(ctx.platform, request["FunctionName"])
        return {**functions.configuration(resource), "CodeSha256": code["sha256"],
                "CodeSize": code["size"]}
    changes: dict[str, Any] = {"_code": code, "CodeSha256": code["sha256"], "CodeSize": code["size"]}
    if request.get("Architectures"):
        changes["Architectures"] = request["Architectures"]
    return _update(ctx, request, changes)


def update_function_configuration(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _checked_limits(request)
    resource = functions.find(ctx.platform, request["FunctionName"])
    functions.check_runtime(request.get("Runtime", resource.document["Runtime"]),
                            request.get("Handler", resource.document["Handler"]))
    changes = {member: request[member] for member in (
        "Role", "Handler", "Description", "Timeout", "MemorySize", "Environment", "Runtime",
        "VpcConfig", "DeadLetterConfig", "KMSKeyArn", "TracingConfig", "EphemeralStorage")
        if member in request}
    return _update(ctx, request, changes)


def delete_function(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"], request.get("Qualifier"))
    _, qualifier = functions.parse_reference(ctx.platform, request["FunctionName"],
                                             request.get("Qualifier"))
    if qualifier == LATEST:
        raise invalid("$LATEST version cannot be deleted without deleting the function.")
    if qualifier:
        def drop(current: Resource) -> dict[str, Any]:
            versions = {k: v for k, v in current.document["_versions"].items() if k != qualifier}
            return {**current.document, "_versions": versions}

        ctx.platform.resources.update(KIND, resource.name, drop, now=ctx.now,
                                      missing=lambda: functions.not_found(ctx.platform, resource.name))
    else:
        ctx.platform.resources.delete(KIND, resource.name)
    runtime(ctx.platform).retire(resource.name)
    return {"StatusCode": 204}


# --- resource policies -------------------------------------------------------------------


def add_permission(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"], request.get("Qualifier"))
    _check_revision(resource, request)
    statement = functions.policy_statement(resource.arn, request)

    def change(current: Resource) -> dict[str, Any]:
        policy = current.document.get("_policy") or {
            "Version": "2012-10-17", "Id": "default", "Statement": []}
        if any(item["Sid"] == request["StatementId"] for item in policy["Statement"]):
            raise AwsError("ResourceConflictException", (
                f"The statement id ({request['StatementId']}) provided already exists. Please "
                "provide a new statement id, or remove the existing statement."), status=409,
                Type="User")
        policy = {**policy, "Statement": [*policy["Statement"], statement]}
        return {**current.document, "_policy": policy, "RevisionId": str(uuid.uuid4())}

    ctx.platform.resources.update(KIND, resource.name, change, now=ctx.now,
                                  missing=lambda: functions.not_found(ctx.platform, resource.name))
    runtime(ctx.platform).forget(resource.name)
    return {"Statement": json.dumps(statement)}


def remove_permission(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"], request.get("Qualifier"))
    _check_revision(resource, request)

    def change(current: Resource) -> dict[str, Any]:
        policy = current.document.get("_policy") or {"Statement": []}
        kept = [item for item in policy["Statement"] if item["Sid"] != request["StatementId"]]
        if len(kept) == len(policy["Statement"]):
            raise AwsError("ResourceNotFoundException", (
                f"Statement {request['StatementId']} is not found in resource policy."),
                status=404, Type="User")
        document = {**current.document, "RevisionId": str(uuid.uuid4())}
        document["_policy"] = {**policy, "Statement": kept} if kept else None
        return document

    ctx.platform.resources.update(KIND, resource.name, change, now=ctx.now,
                                  missing=lambda: functions.not_found(ctx.platform, resource.name))
    runtime(ctx.platform).forget(resource.name)
    return {}


def get_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["FunctionName"], request.get("Qualifier"))
    policy = resource.document.get("_policy")
    if not policy or not policy.get("Statement"):
        raise AwsError("ResourceNotFoundException", _NO_POLICY, status=404, Type="User")
    return {"Policy": json.dumps(policy), "RevisionId": resource.document["RevisionId"]}


# --- invocation --------------------------------------------------------------------------


def invoke_function(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    reference, qualifier = request["FunctionName"], request.get("Qualifier")
    kind = request.get("InvocationType", "RequestResponse")
    payload = request.get("Payload") or b""
    if isinstance(payload, str):
        payload = payload.encode()
    try:
        request_id = str(uuid.UUID(ctx.request_id))
    except ValueError:
        request_id = str(uuid.uuid4())
    if kind == "DryRun":
        functions.find(ctx.platform, reference, qualifier)
        return {"StatusCode": 204}
    if payload.strip():
        try:
            json.loads(payload)
        except ValueError as error:
            raise AwsError("InvalidRequestContentException", (
                f"Could not parse request body into json: Could not parse payload into json: "
                f"{error}")) from None
    if kind == "Event":
        invoke_async(ctx.platform, reference, payload, qualifier=qualifier, request_id=request_id)
        return {"StatusCode": 202, "Payload": b""}
    client_context = None
    if request.get("ClientContext"):
        try:
            client_context = json.loads(base64.b64decode(request["ClientContext"]))
        except (ValueError, binascii.Error):
            raise invalid("Client context must be a valid Base64-encoded JSON object.") from None
    return invoke(ctx.platform, reference, payload, log_type=request.get("LogType"),
                  qualifier=qualifier, request_id=request_id, client_context=client_context)


# --- tags --------------------------------------------------------------------------------


def _tagged(ctx: RequestContext, arn: str, change: Any) -> dict[str, str]:
    resource = functions.find(ctx.platform, arn)
    result: dict[str, str] = {}

    def update(current: Resource) -> dict[str, Any]:
        tags = change(dict(current.document.get("_tags") or {}))
        result.update(tags)
        return {**current.document, "_tags": tags}

    ctx.platform.resources.update(KIND, resource.name, update, now=ctx.now,
                                  missing=lambda: functions.not_found(ctx.platform, resource.name))
    runtime(ctx.platform).forget(resource.name)
    return result


def tag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _tagged(ctx, request["Resource"], lambda tags: {**tags, **request["Tags"]})
    return {}


def untag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _tagged(ctx, request["Resource"],
            lambda tags: {k: v for k, v in tags.items() if k not in request["TagKeys"]})
    return {}


def list_tags(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = functions.find(ctx.platform, request["Resource"])
    return {"Tags": resource.document.get("_tags") or {}}


OPERATIONS: dict[str, Any] = {
    "CreateFunction": create_function,
    "GetFunction": get_function,
    "GetFunctionConfiguration": get_function_configuration,
    "ListFunctions": list_functions,
    "UpdateFunctionCode": update_function_code,
    "UpdateFunctionConfiguration": update_function_configuration,
    "DeleteFunction": delete_function,
    "PublishVersion": publish_version,
    "AddPermission": add_permission,
    "RemovePermission": remove_permission,
    "GetPolicy": get_policy,
    "Invoke": invoke_function,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTags": list_tags,
}
