"""Lambda functions as stored: configuration, code packages, names and ARNs, policies.

A function lives in the resource store (kind ``LambdaFunction``); its document is
``GetFunctionConfiguration``'s answer plus private members (``_code``, ``_tags``,
``_policy``, ``_versions``). Code packages are kept by content under
``<data-dir>/lambda/code/<sha256>.zip``, so an unchanged package is stored once.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

KIND = "LambdaFunction"
SUPPORTED_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13")
LATEST = "$LATEST"
MAX_UNZIPPED_BYTES = 262_144_000
UNZIP_ERROR = "Could not unzip uploaded file. Please check your file, then try to upload again."
# What Lambda sets itself and refuses in Environment.Variables.
RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
# FunctionName as Lambda accepts it: a name, a partial ARN or a full ARN, each optionally
# with a qualifier (botocore's NamespacedFunctionName pattern, split into groups).
_FUNCTION_REF = re.compile(
    r"(?:arn:(?:aws[a-zA-Z-]*)?:lambda:(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?")


def invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message)


def function_arn(platform: "Platform", name: str) -> str:
    return platform.settings.arn("lambda", f"function:{name}")


def not_found(platform: "Platform", name: str, qualifier: str | None = None) -> AwsError:
    arn = function_arn(platform, name) + (f":{qualifier}" if qualifier else "")
    return AwsError("ResourceNotFoundException", f"Function not found: {arn}", status=404)


def parse_reference(platform: "Platform", reference: str,
                    qualifier: str | None = None) -> tuple[str, str | None]:
    """(name, qualifier) of a FunctionName as Lambda accepts it; checks region and account."""
    match = _FUNCTION_REF.fullmatch(reference)
    if match is None:
        raise AwsError("ValidationException", (
            f"1 validation error detected: Value '{reference}' at 'functionName' failed to "
            "satisfy constraint: Member must be a function name (my-function), a partial ARN "
            "(123456789012:function:my-function) or a function ARN, optionally with a "
            ":version or :alias qualifier"))
    settings = platform.settings
    if match["region"] and match["region"] != settings.region:
        raise AwsError("ResourceNotFoundException", (
            f"Function not found: {reference}: this modelyard serves region {settings.region}, "
            f"not {match['region']}"), status=404)
    if match["account"] and match["account"] != settings.account_id:
        raise AwsError("AccessDeniedException", (
            f"The function {reference} belongs to account {match['account']}; this modelyard "
            f"is account {settings.account_id}."), status=403)
    inline = match["qualifier"]
    if inline and qualifier and inline != qualifier:
        raise invalid(f"The derived qualifier from the function name ({inline}) does not "
                      f"match the specified qualifier ({qualifier}).")
    return match["name"], inline or qualifier


def find(platform: "Platform", reference: str, qualifier: str | None = None) -> "Resource":
    """The stored function a FunctionName names; ResourceNotFoundException if none."""
    name, qualifier = parse_reference(platform, reference, qualifier)
    resource = _cached(platform, name)
    if resource is None:
        raise not_found(platform, name, qualifier)
    if qualifier not in (None, LATEST) and qualifier not in resource.document.get("_versions", {}):
        raise not_found(platform, resource.name, qualifier)
    return resource


def _cached(platform: "Platform", name: str) -> "Resource | None":
    from .invoke import runtime

    return runtime(platform).function(name, lambda key: platform.resources.get(KIND, key))


def configuration(resource: "Resource", qualifier: str | None = None) -> dict[str, Any]:
    """GetFunctionConfiguration's members: the document without its private parts."""
    document = resource.document
    if qualifier not in (None, LATEST):
        document = document["_versions"][qualifier]
    return {key: value for key, value in document.items() if not key.startswith("_")}


def last_modified(now: float) -> str:
    """Lambda's LastModified form: 2024-05-01T12:00:00.000+0000."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def check_runtime(runtime: str | None, handler: str | None) -> None:
    if runtime is None or handler is None:
        raise invalid("Runtime and Handler are mandatory parameters for functions created "
                      "with deployment packages.")
    if runtime not in SUPPORTED_RUNTIMES:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise invalid(
            f"The runtime parameter of {runtime} is not supported by modelyard: it runs Python "
            f"functions only, with its own Python {version}. Use one of "
            f"{', '.join(SUPPORTED_RUNTIMES)}.")


def check_environment(environment: dict[str, Any] | None) -> None:
    variables = (environment or {}).get("Variables") or {}
    reserved = sorted(RESERVED_VARIABLES & set(variables))
    if reserved:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}")


# --- code packages ---------------------------------------------------------------------


def code_root(platform: "Platform") -> Path:
    return platform.settings.data_dir / "lambda" / "code"


def read_code(platform: "Platform", request: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The zip a CreateFunction / UpdateFunctionCode request carries, and where it came from."""
    if request.get("ImageUri") or request.get("PackageType") == "Image":
        raise invalid("modelyard runs Zip functions only (PackageType Zip); container images "
                      "are not supported. Upload a .zip package as ZipFile or S3Bucket/S3Key.")
    code = request.get("Code", request)
    if code.get("ZipFile") is not None:
        return code["ZipFile"], {"RepositoryType": "S3"}
    bucket, key = code.get("S3Bucket"), code.get("S3Key")
    if not bucket or not key:
        raise invalid("Please provide a source for function code: ZipFile, or S3Bucket and "
                      "S3Key.")
    try:
        reader = platform.objects.open_object(bucket, key)
    except AwsError as error:
        raise invalid(f"Error occurred while GetObject. S3 Error Code: {error.code}. S3 Error "
                      f"Message: {error.message}") from None
    try:
        data = b"".join(reader.iter_chunks())
    finally:
        reader.close()
    source = {"RepositoryType": "S3", "S3Bucket": bucket, "S3Key": key}
    if code.get("S3ObjectVersion"):
        source["S3ObjectVersion"] = code["S3ObjectVersion"]
    return data, source


def store_code(platform: "Platform", data: bytes, source: dict[str, Any]) -> dict[str, Any]:
    """Check the package is a zip within Lambda's limits and keep it; its ``_code`` record."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise invalid(UNZIP_ERROR) from None
    if unzipped > MAX_UNZIPPED_BYTES:
        raise invalid(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
    digest = hashlib.sha256(data)
    root = code_root(platform)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{digest.hexdigest()}.zip"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    return {"path": path.name, "sha256": base64.b64encode(digest.digest()).decode(),
            "size": len(data), "source": source}


def code_path(platform: "Platform", code: dict[str, Any]) -> Path:
    return code_root(platform) / code["path"]


def extract_code(platform: "Platform", code: dict[str, Any], destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(code_path(platform, code)) as archive:
        archive.extractall(destination)  # zipfile drops absolute and ".." parts of names


# --- resource policies -----------------------------------------------------------------


def policy_statement(arn: str, request: dict[str, Any]) -> dict[str, Any]:
    """The statement AddPermission adds, as Lambda writes it into the function's policy."""
    principal = request["Principal"]
    if principal == "*":
        who: Any = "*"
    elif re.fullmatch(r"\d{12}", principal):
        who = {"AWS": f"arn:aws:iam::{principal}:root"}
    elif principal.startswith("arn:"):
        who = {"AWS": principal}
    else:
        who = {"Service": principal}
    statement: dict[str, Any] = {"Sid": request["StatementId"], "Effect": "Allow",
                                 "Principal": who, "Action": request["Action"], "Resource": arn}
    condition: dict[str, dict[str, str]] = {}
    if request.get("SourceAccount"):
        condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = request["SourceAccount"]
    if request.get("PrincipalOrgID"):
        condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = request["PrincipalOrgID"]
    if request.get("FunctionUrlAuthType"):
        condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = (
            request["FunctionUrlAuthType"])
    if request.get("EventSourceToken"):
        condition.setdefault("StringEquals", {})["lambda:EventSourceToken"] = (
            request["EventSourceToken"])
    if request.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": request["SourceArn"]}
    if condition:
        statement["Condition"] = condition
    return statement
