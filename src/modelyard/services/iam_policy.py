"""IAM policy documents and ARNs: the syntax checks IAM makes when it stores them.

modelyard stores policies and does not enforce them: a document is checked the way IAM
checks it on the way in (JSON, a known version, statements with an effect and actions,
a principal in trust policies and resources in permission policies), then kept verbatim.
IAM returns documents URL-encoded; botocore decodes them back into dicts.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from ..api.errors import AwsError
from ..api.shapes import service_model

VERSIONS = ("2012-10-17", "2008-10-17")
_TOP_LEVEL = {"Version", "Id", "Statement"}
_STATEMENT_KEYS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                   "Resource", "NotResource", "Condition"}
_PRINCIPAL_KINDS = {"AWS", "Service", "Federated", "CanonicalUser"}
_EXAMPLE_TRUST = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
                  '{"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
_EXAMPLE_PERMISSIONS = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
                        '"Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-bucket/*"}]}')
POLICY_ARN = re.compile(
    r"arn:aws[a-z-]*:iam::(?:aws|\d{12}):policy(?P<path>/(?:[\x21-\x7e]+/)?)(?P<name>[\w+=,.@-]+)"
)


def iam_error(exception_shape: str, message: str) -> AwsError:
    """An error with the code and HTTP status botocore's IAM model gives the exception."""
    error = service_model("iam").shape_for(exception_shape).metadata["error"]
    return AwsError(error["code"], message, status=error["httpStatusCode"])


def encode(document: str) -> str:
    """IAM returns policy documents URL-encoded (RFC 3986)."""
    return quote(document, safe="")


def check_trust_policy(document: str) -> None:
    """A role's trust (assume-role) policy: who may assume it. Principals required."""
    _check(document, trust=True)


def check_permissions_policy(document: str) -> None:
    """An inline permissions policy: what the role may do. Resources required."""
    _check(document, trust=False)


def non_whitespace_size(document: str) -> int:
    """IAM counts policy sizes without white space."""
    return sum(1 for ch in document if not ch.isspace())


def parse_policy_arn(arn: str) -> tuple[str, str]:
    """(path, name) of a managed policy ARN; InvalidInput when it is not one."""
    match = POLICY_ARN.fullmatch(arn)
    if match is None:
        raise iam_error(
            "InvalidInputException",
            f"ARN {arn} is not valid. A managed policy ARN looks like "
            "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess or "
            "arn:aws:iam::<12-digit account id>:policy/<optional path/>name.",
        )
    return match["path"], match["name"]


def _check(document: str, *, trust: bool) -> None:
    example = _EXAMPLE_TRUST if trust else _EXAMPLE_PERMISSIONS
    try:
        policy = json.loads(document)
    except ValueError as error:
        raise _malformed(f"This policy contains invalid Json ({error}).", example) from None
    except RecursionError:
        raise _malformed("This policy contains invalid Json (nested too deeply).",
                         example) from None
    if not isinstance(policy, dict):
        raise _malformed("A policy document must be a JSON object.", example)
    unknown = sorted(set(policy) - _TOP_LEVEL)
    if unknown:
        raise _malformed(f"Syntax errors in policy: unknown field {unknown[0]}; a policy "
                         "has Version, Id and Statement.", example)
    if "Version" in policy and policy["Version"] not in VERSIONS:
        raise _malformed(f"The policy must contain a valid version string: "
                         f"{' or '.join(VERSIONS)}.", example)
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not statements or not isinstance(statements, list):
        raise _malformed("Missing required field Statement (a statement or a list of them).",
                         example)
    for index, statement in enumerate(statements, 1):
        where = f"statement {index}"
        if not isinstance(statement, dict):
            raise _malformed(f"Syntax errors in policy: {where} is not a JSON object.", example)
        unknown = sorted(set(statement) - _STATEMENT_KEYS)
        if unknown:
            raise _malformed(f"Syntax errors in policy: {where} has unknown field {unknown[0]}.",
                             example)
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise _malformed(f"Invalid effect in {where}: {_short(statement.get('Effect'))}; use "
                             "\"Allow\" or \"Deny\".", example)
        if ("Action" in statement) == ("NotAction" in statement):
            raise _malformed(f"Policy statement must contain actions ({where} needs exactly "
                             "one of Action and NotAction).", example)
        _check_strings(statement, ("Action", "NotAction"), where, example)
        if trust:
            _check_trust_statement(statement, where, example)
        else:
            _check_permissions_statement(statement, where, example)


def _check_trust_statement(statement: dict[str, Any], where: str, example: str) -> None:
    for field in ("Resource", "NotResource"):
        if field in statement:
            raise _malformed(f"Has prohibited field {field} ({where}): a trust policy names "
                             "principals, not resources.", example)
    if ("Principal" in statement) == ("NotPrincipal" in statement):
        raise _malformed(f"Missing required field Principal ({where}).", example)
    principal = statement.get("Principal", statement.get("NotPrincipal"))
    if principal == "*":
        return
    if not isinstance(principal, dict) or not principal:
        raise _malformed(f"Invalid principal in policy ({where}): use \"*\" or an object such "
                         "as {\"Service\": \"sagemaker.amazonaws.com\"}.", example)
    for kind_name, value in principal.items():
        if kind_name not in _PRINCIPAL_KINDS:
            raise _malformed(f"Invalid principal in policy ({where}): unknown principal type "
                             f"{kind_name}; use one of {', '.join(sorted(_PRINCIPAL_KINDS))}.",
                             example)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(item, str) and item for item in values):
            raise _malformed(f"Invalid principal in policy ({where}): {kind_name} must be a "
                             "string or a list of strings.", example)


def _check_permissions_statement(statement: dict[str, Any], where: str, example: str) -> None:
    if "Principal" in statement or "NotPrincipal" in statement:
        raise _malformed(f"Policy document should not specify a principal ({where}).", example)
    if ("Resource" in statement) == ("NotResource" in statement):
        raise _malformed(f"Policy statement must contain resources ({where} needs exactly one "
                         "of Resource and NotResource).", example)
    _check_strings(statement, ("Resource", "NotResource"), where, example)


def _check_strings(statement: dict[str, Any], fields: tuple[str, ...], where: str,
                   example: str) -> None:
    for field in fields:
        if field not in statement:
            continue
        value = statement[field]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(item, str) and item for item in values):
            raise _malformed(f"Syntax errors in policy: {field} in {where} must be a string or "
                             "a list of strings.", example)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _malformed(problem: str, example: str) -> AwsError:
    return iam_error("MalformedPolicyDocumentException", f"{problem} For example: {example}")
