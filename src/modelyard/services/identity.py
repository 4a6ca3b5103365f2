"""Who callers are: the account's built-in execution role, shared by STS and IAM.

modelyard has one account and one set of credentials. Callers are presented as the
built-in execution role assumed (``sts.py``), which is what
``sagemaker.get_execution_role()`` expects to find; IAM (``iam.py``) keeps that role
alongside the roles users create, so ``GetRole`` answers for both.
"""

from __future__ import annotations

from ..api.context import RequestContext

EXECUTION_ROLE = "ModelyardExecutionRole"
ROLE_ID = "AROAMODELYARDEXECROLE"
SESSION_NAME = "modelyard"
EXECUTION_ROLE_DESCRIPTION = "The role modelyard runs SageMaker jobs as."

TRUST_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
    '{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def role_arn(ctx: RequestContext, name: str, path: str = "/") -> str:
    """IAM role ARNs carry the account, the role's path and its name as given."""
    return f"arn:aws:iam::{ctx.account_id}:role{path}{name}"


def execution_role_arn(ctx: RequestContext) -> str:
    return role_arn(ctx, EXECUTION_ROLE)


def assumed_role_arn(ctx: RequestContext) -> str:
    return f"arn:aws:sts::{ctx.account_id}:assumed-role/{EXECUTION_ROLE}/{SESSION_NAME}"
