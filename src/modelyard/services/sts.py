"""STS, as much as SageMaker clients need: who am I.

Every caller is the built-in execution role assumed (see ``identity.py``).
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from .identity import ROLE_ID, SESSION_NAME, assumed_role_arn


def get_caller_identity(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "UserId": f"{ROLE_ID}:{SESSION_NAME}",
        "Account": ctx.account_id,
        "Arn": assumed_role_arn(ctx),
    }


OPERATIONS = {"GetCallerIdentity": get_caller_identity}
