"""IAM roles: create, read, list and delete them, with trust, managed and inline policies.

Code written for AWS passes its own role, by name (the SageMaker SDK resolves it with
``GetRole``) or by ARN. Roles live in the resource store (kind ``IamRole``); role names are
unique regardless of case, as in IAM. Policies are stored and returned, not enforced:
every caller acts as the built-in execution role (``identity.py``), which exists from the
account's start and cannot be deleted.

A role's ARN is rendered from the server's current account id when it is read, so a
server started with ``MODELYARD_ACCOUNT_ID`` reports that account on every role.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from collections.abc import Callable, Sequence
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..store.resources import ListQuery, Resource
from . import iam_policy
from .iam_policy import iam_error
from .identity import (
    EXECUTION_ROLE,
    EXECUTION_ROLE_DESCRIPTION,
    ROLE_ID,
    TRUST_POLICY,
    role_arn,
)

KIND = "IamRole"
DEFAULT_MAX_ITEMS = 100  # IAM's List default when MaxItems is absent
DEFAULT_SESSION_SECONDS = 3600
# Inline policies of one role together, white space not counted (an IAM quota that
# cannot be raised).
MAX_INLINE_POLICY_CHARS = 10_240
ATTACHED = "AttachedPolicies"  # [{"PolicyName", "PolicyArn"}], in the stored document only
INLINE = "RolePolicies"  # {name: document}, in the stored document only
# What ListRoles leaves out of each role, as IAM's list operations do.
_NOT_LISTED = ("PermissionsBoundary", "RoleLastUsed", "Tags")
_seeded: set[str] = set()  # databases that already hold the built-in role


# --- roles -------------------------------------------------------------------------------


def create_role(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _ensure_execution_role(ctx)
    name = _ascii_name(request["RoleName"], "roleName")
    path = request.get("Path", "/")
    iam_policy.check_trust_policy(request["AssumeRolePolicyDocument"])
    document: dict[str, Any] = {
        "Path": path,
        "RoleName": name,
        "RoleId": "AROA" + "".join(
            secrets.choice(string.ascii_uppercase + string.digits) for _ in range(17)),
        "CreateDate": ctx.now,
        "AssumeRolePolicyDocument": request["AssumeRolePolicyDocument"],
        "MaxSessionDuration": request.get("MaxSessionDuration", DEFAULT_SESSION_SECONDS),
        ATTACHED: [],
        INLINE: {},
    }
    if "Description" in request:
        document["Description"] = request["Description"]
    if "PermissionsBoundary" in request:
        iam_policy.parse_policy_arn(request["PermissionsBoundary"])
        document["PermissionsBoundary"] = {
            "PermissionsBoundaryType": "Policy",
            "PermissionsBoundaryArn": request["PermissionsBoundary"],
        }
    if request.get("Tags"):
        document["Tags"] = _checked_tags(request["Tags"])
    # The indexed ARN is the path-less one (names are unique on their own, and a path
    # may be longer than the column); responses render the full ARN (_role_view).
    stored = ctx.platform.resources.create(
        KIND, name, role_arn(ctx, name), document, now=ctx.now,
        already_exists=lambda: iam_error(
            "EntityAlreadyExistsException",
            f"Role with name {name} already exists. Role names are unique regardless of "
            "case; choose another name, or GetRole to use the existing role."),
    )
    return {"Role": _role_view(ctx, stored)}


def get_role(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    role = _find_role(ctx, request["RoleName"])
    return {"Role": {**_role_view(ctx, role), "RoleLastUsed": {}}}


def list_roles(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _ensure_execution_role(ctx)
    prefix = request.get("PathPrefix", "/")
    roles = sorted(
        (role for role in _all_roles(ctx) if role.document["Path"].startswith(prefix)),
        key=lambda role: _order_key(role.name),
    )
    page, more = _page(roles, lambda role: _order_key(role.name), request, "ListRoles")
    views = [{key: value for key, value in _role_view(ctx, role).items()
              if key not in _NOT_LISTED} for role in page]
    return {"Roles": views, **more}


def delete_role(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    role = _find_role(ctx, request["RoleName"])
    if role.name == EXECUTION_ROLE:
        raise iam_error(
            "UnmodifiableEntityException",
            f"Cannot perform the operation on the protected role '{EXECUTION_ROLE}': modelyard "
            "presents every caller as this role (sagemaker.get_execution_role() returns it), "
            "so it cannot be deleted.")
    if role.document[ATTACHED]:
        raise iam_error(
            "DeleteConflictException",
            f"Cannot delete entity, must detach all policies first. Role {role.name} has "
            f"{len(role.document[ATTACHED])} attached managed "
            f"{_plural(len(role.document[ATTACHED]), 'policy', 'policies')}; "
            "DetachRolePolicy each (ListAttachedRolePolicies lists them).")
    if role.document[INLINE]:
        raise iam_error(
            "DeleteConflictException",
            f"Cannot delete entity, must delete policies first. Role {role.name} has "
            f"{len(role.document[INLINE])} inline "
            f"{_plural(len(role.document[INLINE]), 'policy', 'policies')}; "
            "DeleteRolePolicy each (ListRolePolicies lists them).")
    ctx.platform.resources.delete(KIND, role.name)
    return {}


def update_assume_role_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    iam_policy.check_trust_policy(request["PolicyDocument"])
    _change_role(ctx, request["RoleName"], lambda document: {
        **document, "AssumeRolePolicyDocument": request["PolicyDocument"]})
    return {}


# --- managed policies ----------------------------------------------------------------------


def attach_role_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["PolicyArn"]
    _, name = iam_policy.parse_policy_arn(arn)

    def attach(document: dict[str, Any]) -> dict[str, Any]:
        attached = document[ATTACHED]
        if any(item["PolicyArn"] == arn for item in attached):
            return document  # attaching twice is not an error in IAM
        return {**document, ATTACHED: [*attached, {"PolicyName": name, "PolicyArn": arn}]}

    _change_role(ctx, request["RoleName"], attach)
    return {}


def detach_role_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["PolicyArn"]
    iam_policy.parse_policy_arn(arn)

    def detach(document: dict[str, Any]) -> dict[str, Any]:
        kept = [item for item in document[ATTACHED] if item["PolicyArn"] != arn]
        if len(kept) == len(document[ATTACHED]):
            raise iam_error(
                "NoSuchEntityException",
                f"Policy {arn} was not found attached to role {request['RoleName']}. "
                "ListAttachedRolePolicies lists the policies it has.")
        return {**document, ATTACHED: kept}

    _change_role(ctx, request["RoleName"], detach)
    return {}


def list_attached_role_policies(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    role = _find_role(ctx, request["RoleName"])
    prefix = request.get("PathPrefix", "/")
    attached = sorted(
        (item for item in role.document[ATTACHED]
         if iam_policy.parse_policy_arn(item["PolicyArn"])[0].startswith(prefix)),
        key=_attached_key,
    )
    page, more = _page(attached, _attached_key, request, "ListAttachedRolePolicies")
    return {"AttachedPolicies": page, **more}


# --- inline policies -------------------------------------------------------------------------


def put_role_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name, policy = _ascii_name(request["PolicyName"], "policyName"), request["PolicyDocument"]
    iam_policy.check_permissions_policy(policy)

    def put(document: dict[str, Any]) -> dict[str, Any]:
        inline = {**document[INLINE], name: policy}
        size = sum(iam_policy.non_whitespace_size(text) for text in inline.values())
        if size > MAX_INLINE_POLICY_CHARS:
            raise iam_error(
                "LimitExceededException",
                f"Maximum policy size of {MAX_INLINE_POLICY_CHARS} bytes exceeded for role "
                f"{document['RoleName']}: its inline policies would total {size} characters "
                "(white space not counted). Move permissions into a managed policy and "
                "AttachRolePolicy it.")
        return {**document, INLINE: inline}

    _change_role(ctx, request["RoleName"], put)
    return {}


def get_role_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    role = _find_role(ctx, request["RoleName"])
    name = request["PolicyName"]
    policy = role.document[INLINE].get(name)
    if policy is None:
        raise _no_inline_policy(role.name, name)
    return {"RoleName": role.name, "PolicyName": name, "PolicyDocument": iam_policy.encode(policy)}


def delete_role_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["PolicyName"]

    def remove(document: dict[str, Any]) -> dict[str, Any]:
        if name not in document[INLINE]:
            raise _no_inline_policy(document["RoleName"], name)
        return {**document, INLINE: {key: value for key, value in document[INLINE].items()
                                     if key != name}}

    _change_role(ctx, request["RoleName"], remove)
    return {}


def list_role_policies(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    role = _find_role(ctx, request["RoleName"])
    names = sorted(role.document[INLINE])
    page, more = _page(names, lambda name: name, request, "ListRolePolicies")
    return {"PolicyNames": page, **more}


# --- helpers ----------------------------------------------------------------------------------


def _find_role(ctx: RequestContext, name: str) -> Resource:
    _ensure_execution_role(ctx)
    role = ctx.platform.resources.get(KIND, name)
    if role is None:
        raise _no_role(name)
    return role


def _change_role(
    ctx: RequestContext, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> Resource:
    """Change one role in a transaction; ``change`` may raise to leave it as it was."""
    _ensure_execution_role(ctx)
    return ctx.platform.resources.update(
        KIND, name, lambda role: change(dict(role.document)), now=ctx.now,
        missing=lambda: _no_role(name))


def _no_role(name: str) -> AwsError:
    return iam_error(
        "NoSuchEntityException",
        f"The role with name {name} cannot be found. Create it with CreateRole, or list "
        "the roles there are with ListRoles.")


def _no_inline_policy(role: str, policy: str) -> AwsError:
    return iam_error(
        "NoSuchEntityException",
        f"The role policy with name {policy} cannot be found in role {role}. ListRolePolicies "
        "lists its inline policies.")


def _role_view(ctx: RequestContext, role: Resource) -> dict[str, Any]:
    """The Role shape: the stored document without policies, with the ARN of today's account."""
    document = role.document
    view = {key: value for key, value in document.items() if key not in (ATTACHED, INLINE)}
    view["Arn"] = role_arn(ctx, role.name, document["Path"])
    view["AssumeRolePolicyDocument"] = iam_policy.encode(document["AssumeRolePolicyDocument"])
    return view


def _all_roles(ctx: RequestContext) -> list[Resource]:
    """Every role; an account holds at most a few thousand, so paths are filtered here."""
    roles: list[Resource] = []
    token = None
    while True:
        page = ctx.platform.resources.list(KIND, ListQuery(
            sort_by="name", descending=False, max_results=1000, next_token=token))
        roles.extend(page.items)
        token = page.next_token
        if token is None:
            return roles


def _ensure_execution_role(ctx: RequestContext) -> None:
    """Store the built-in role once; it then behaves like any role but cannot be deleted."""
    store = ctx.platform.resources
    database = ctx.platform.settings.resolved_database_url
    if database in _seeded:
        return
    if store.get(KIND, EXECUTION_ROLE) is None:
        # The role exists from the account's start: the server's first start.
        created = ctx.platform.settings.data_dir.stat().st_ctime
        document = {
            "Path": "/", "RoleName": EXECUTION_ROLE, "RoleId": ROLE_ID, "CreateDate": created,
            "AssumeRolePolicyDocument": TRUST_POLICY, "Description": EXECUTION_ROLE_DESCRIPTION,
            "MaxSessionDuration": 43200, ATTACHED: [], INLINE: {},
        }
        try:
            store.create(KIND, EXECUTION_ROLE, role_arn(ctx, EXECUTION_ROLE), document,
                         now=created)
        except AwsError:
            pass  # another request stored it first
    _seeded.add(database)


def _ascii_name(name: str, member: str) -> str:
    """IAM names are ASCII (the model's ``\\w`` is Java's); Python's ``\\w`` lets more in."""
    if not name.isascii():
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value '{name}' at '{member}' failed to satisfy "
            "constraint: Member must contain only ASCII letters, digits and _+=,.@-")
    return name


def _checked_tags(tags: list[dict[str, str]]) -> list[dict[str, str]]:
    keys = [tag["Key"].lower() for tag in tags]
    if len(set(keys)) != len(keys):
        raise iam_error(
            "InvalidInputException",
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.")
    return tags


def _order_key(name: str) -> str:
    return name.lower()


def _attached_key(item: dict[str, str]) -> str:
    return f"{item['PolicyName']}\0{item['PolicyArn']}"


def _page(
    items: Sequence[Any], key: Callable[[Any], str], request: dict[str, Any], operation: str
) -> tuple[list[Any], dict[str, Any]]:
    """IAM paging: ``MaxItems`` per page, ``Marker`` names the last item returned.

    Items are in ``key`` order, so a page starts after the marker even when the item it
    names was deleted in between.
    """
    limit = request.get("MaxItems", DEFAULT_MAX_ITEMS)
    after = _decode_marker(request.get("Marker"), operation)
    start = items if after is None else [item for item in items if key(item) > after]
    page = list(start[:limit])
    if len(start) > limit:
        return page, {"IsTruncated": True, "Marker": _encode_marker(key(page[-1]), operation)}
    return page, {"IsTruncated": False}


def _encode_marker(after: str, operation: str) -> str:
    raw = json.dumps({"op": operation, "after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_marker(marker: str | None, operation: str) -> str | None:
    if marker is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(marker.encode()))
        if data["op"] != operation or not isinstance(data["after"], str):
            raise ValueError
        return data["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise AwsError(
            "ValidationError",
            f"The Marker is not valid for {operation}. Pass the Marker exactly as the "
            "previous response returned it.") from None


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


OPERATIONS = {
    "CreateRole": create_role,
    "GetRole": get_role,
    "ListRoles": list_roles,
    "DeleteRole": delete_role,
    "UpdateAssumeRolePolicy": update_assume_role_policy,
    "AttachRolePolicy": attach_role_policy,
    "DetachRolePolicy": detach_role_policy,
    "ListAttachedRolePolicies": list_attached_role_policies,
    "PutRolePolicy": put_role_policy,
    "GetRolePolicy": get_role_policy,
    "DeleteRolePolicy": delete_role_policy,
    "ListRolePolicies": list_role_policies,
}
