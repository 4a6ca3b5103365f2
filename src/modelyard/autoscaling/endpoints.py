"""What Application Auto Scaling does when the endpoint of a scaled variant changes.

As the SageMaker developer guide describes ("Update endpoints that use auto scaling",
"Delete endpoints configured for auto scaling"):

- **UpdateEndpoint** fails when the new endpoint configuration would change the instance
  type of a variant that is a scalable target, or remove such a variant; the variant must
  first be deregistered (DeregisterScalableTarget, which also deletes its scaling policies).
  Changing the model of a scaled variant is allowed, as are new and unscaled variants.
  ``check_update`` is called by services/endpoints.py before anything changes.
- **DeleteEndpoint** deregisters the endpoint's scalable targets without telling anyone:
  their scaling policies (and target tracking's managed alarms) and scheduled actions go
  with them. ``deregister_endpoint`` does it through ``dispatch.call`` exactly as a client's
  DeregisterScalableTarget would.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from . import store

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

log = logging.getLogger("modelyard.autoscaling")


def scaled_variants(platform: "Platform", endpoint: str) -> dict[str, "Resource"]:
    """The scalable targets of ``endpoint``'s variants, by variant name."""
    if platform.resources.count(store.TARGET) == 0:
        return {}
    found = {}
    for target in store.all_of(platform, store.TARGET):
        document = target.document
        if document["ServiceNamespace"] != store.NAMESPACE:
            continue
        match = store.RESOURCE_ID.match(document["ResourceId"])
        if match is not None and match.group(1).lower() == endpoint.lower():
            found[match.group(2)] = target
    return found


def check_update(platform: "Platform", endpoint: str, current: dict[str, Any],
                 deployment: dict[str, Any]) -> None:
    """ValidationException when updating ``endpoint`` from the ``current`` deployment to
    ``deployment`` would remove a scaled variant or change its instance type."""
    scaled = scaled_variants(platform, endpoint)
    if not scaled:
        return
    before = {item["VariantName"]: item for item in current.get("Variants", [])}
    after = {item["VariantName"]: item for item in deployment.get("Variants", [])}
    removed, retyped = [], []
    for name in sorted(scaled):
        if name not in before:
            continue  # a target left over from a variant the endpoint no longer has
        if name not in after:
            removed.append(name)
        elif after[name].get("InstanceType") != before[name].get("InstanceType"):
            retyped.append(f"{name} ({before[name].get('InstanceType')} -> "
                           f"{after[name].get('InstanceType')})")
    if not removed and not retyped:
        return
    problems = []
    if removed:
        problems.append(f"endpoint config {deployment.get('EndpointConfigName')!r} removes "
                        f"the variant(s) {removed}")
    if retyped:
        problems.append(f"it changes the instance type of {', '.join(retyped)}")
    names = sorted(set(removed) | {item.split(" ", 1)[0] for item in retyped})
    raise AwsError(
        "ValidationException",
        f"Cannot update endpoint {endpoint!r}: {'; '.join(problems)}, and "
        f"{'these variants are' if len(names) > 1 else 'this variant is'} registered as "
        "scalable targets with Application Auto Scaling. Delete the scaling policies and "
        "deregister the variants first (DeregisterScalableTarget with ResourceId "
        f"{', '.join(f'endpoint/{endpoint}/variant/{name}' for name in names)}), update the "
        "endpoint, then register them again. Changing only a scaled variant's model is "
        "allowed.")


def deregister_endpoint(platform: "Platform", endpoint: str) -> list[str]:
    """Deregister every scalable target of ``endpoint``'s variants (with their policies,
    managed alarms and scheduled actions); the ResourceIds deregistered."""
    from .. import dispatch

    done = []
    for target in scaled_variants(platform, endpoint).values():
        document = target.document
        try:
            dispatch.call(platform, "application-autoscaling", "DeregisterScalableTarget", {
                "ServiceNamespace": document["ServiceNamespace"],
                "ResourceId": document["ResourceId"],
                "ScalableDimension": document["ScalableDimension"]})
        except AwsError as error:  # deregistered meanwhile
            log.info("deregistering %s: %s", document["ResourceId"], error.message)
            continue
        done.append(document["ResourceId"])
    if done:
        log.info("endpoint %s deleted: deregistered its scalable targets %s", endpoint, done)
    return done
