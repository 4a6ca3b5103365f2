"""What an operation handler receives besides its request: who asked, and the platform."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..platform import Platform


@dataclass(frozen=True)
class RequestContext:
    platform: "Platform"
    request_id: str
    service: str  # botocore service name: "sagemaker", "s3", "logs", ...
    operation: str
    access_key_id: str = ""
    # Facts only a caller inside the server can give (``dispatch.call(..., internal=...)``);
    # requests from the wire always have none, whatever their body says.
    internal: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def settings(self):  # noqa: ANN201 - Settings; kept loose to avoid an import cycle
        return self.platform.settings

    @property
    def now(self) -> float:
        return self.platform.clock.now()

    @property
    def region(self) -> str:
        return self.platform.settings.region

    @property
    def account_id(self) -> str:
        return self.platform.settings.account_id

    def arn(self, service: str, resource: str) -> str:
        return self.platform.settings.arn(service, resource)
