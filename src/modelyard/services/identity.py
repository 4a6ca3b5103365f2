"""STS and IAM, as much as SageMaker clients need: who am I, and which role do I run as.

modelyard has one account and one execution role. Callers are presented as that role
assumed, which is what ``sagemaker.get_execution_role()`` expects to find.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError

EXECUTION_ROLE = "ModelyardExecutionRole"
ROLE_ID = "AROAMODELYARDEXECROLE"
SESSION_NAME = "modelyard"

_TRUST_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
    '{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def execution_role_arn(ctx: RequestContext) -> str:
    return f"arn:aws:iam::{ctx.account_id}:role/{EXECUTION_ROLE}"


def get_caller_identity(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "UserId": f"{ROLE_ID}:{SESSION_NAME}",
        "Account": ctx.account_id,
        "Arn": f"arn:aws:sts::{ctx.account_id}:assumed-role/{EXECUTION_ROLE}/{SESSION_NAME}",
    }


def get_role(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["RoleName"]
    if name != EXECUTION_ROLE:
        raise AwsError(
            "NoSuchEntity",
            f"The role with name {name} cannot be found. modelyard has one execution role, "
            f"{EXECUTION_ROLE} ({execution_role_arn(ctx)}); pass that.",
            status=404,
        )
    return {
        "Role": {
            "Path": "/",
            "RoleName": EXECUTION_ROLE,
            "RoleId": ROLE_ID,
            "Arn": execution_role_arn(ctx),
            # The role exists from the account's start: the server's first start.
            "CreateDate": ctx.platform.settings.data_dir.stat().st_ctime,
            "AssumeRolePolicyDocument": _TRUST_POLICY,
            "Description": "The role modelyard runs SageMaker jobs as.",
            "MaxSessionDuration": 43200,
        }
    }


STS_OPERATIONS = {"GetCallerIdentity": get_caller_identity}
IAM_OPERATIONS = {"GetRole": get_role}
