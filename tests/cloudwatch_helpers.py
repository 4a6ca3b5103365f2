"""Helpers for CloudWatch metrics tests."""

from __future__ import annotations

import math
import time

import pytest
from botocore.exceptions import ClientError

DIMS = [{"Name": "Service", "Value": "checkout"}]


def minute_ago(minutes: int) -> float:
    """The start of the minute ``minutes`` before the current one."""
    return (math.floor(time.time() / 60) - minutes) * 60.0


def error_of(call, **kwargs) -> tuple[str, str]:
    """The error code and message ``call(**kwargs)`` answers with."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]
