"""What a SageMaker instance type has: vCPUs and memory, from its name.

``ml.<family>.<size>``: the size gives the vCPUs (``large`` 2, ``xlarge`` 4, ``Nxlarge``
4·N) and the family the memory per vCPU (general purpose ``m`` 4 GiB, compute ``c``
2 GiB, memory ``r`` 8 GiB, ...), with a table for the types that do not follow it.
Figures are AWS's published instance specifications.
"""

from __future__ import annotations

import re

GiB = 1024 ** 3

_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}
# GiB of memory per vCPU by family (the letters and generation before the size).
_GIB_PER_VCPU = {
    "m4": 4, "m5": 4, "m5d": 4, "m6i": 4, "m6id": 4, "m6g": 4, "m6gd": 4, "m7i": 4, "m7g": 4,
    "c4": 1.875, "c5": 2, "c5d": 2, "c5n": 2.625, "c6i": 2, "c6id": 2, "c6in": 2, "c6g": 2,
    "c6gd": 2, "c6gn": 2, "c7i": 2, "c7g": 2,
    "r5": 8, "r5d": 8, "r6i": 8, "r6id": 8, "r6g": 8, "r6gd": 8, "r7i": 8, "r7g": 8,
    "g4dn": 4, "g5": 4, "g6": 4, "g6e": 8, "trn1": 4, "trn1n": 4, "inf1": 2, "inf2": 4,
    "p2": 15.25, "p3": 7.625, "p3dn": 8, "p4d": 12, "p4de": 12,
}
# Burstable types and the few whose memory does not follow their family's ratio (GiB).
_EXCEPTIONS = {
    "t2.medium": 4, "t2.large": 8, "t2.xlarge": 16, "t2.2xlarge": 32,
    "t3.medium": 4, "t3.large": 8, "t3.xlarge": 16, "t3.2xlarge": 32,
    "p2.16xlarge": 732, "p5.48xlarge": 2048, "c5n.9xlarge": 96, "c5n.18xlarge": 192,
}
_DEFAULT_GIB_PER_VCPU = 4  # an unknown family: assume general purpose
_NAME = re.compile(r"^ml\.(?P<family>[a-z0-9-]+)\.(?P<size>[a-z0-9]+)$")


def vcpus(instance_type: str) -> int:
    """The vCPUs of the instance type (4 when its size is not recognised)."""
    size = instance_type.rsplit(".", 1)[-1]
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    if size.endswith("xlarge") and size[:-6].isdigit():
        return 4 * int(size[:-6])
    return 4


def memory_bytes(instance_type: str) -> int:
    """The memory of the instance type, e.g. 8 GiB for ml.m5.large, 8 GiB for ml.c5.xlarge."""
    match = _NAME.match(instance_type)
    if match is None:
        return vcpus(instance_type) * _DEFAULT_GIB_PER_VCPU * GiB
    family, size = match["family"], match["size"]
    if f"{family}.{size}" in _EXCEPTIONS:
        return int(_EXCEPTIONS[f"{family}.{size}"] * GiB)
    return int(vcpus(instance_type) * _GIB_PER_VCPU.get(family, _DEFAULT_GIB_PER_VCPU) * GiB)
