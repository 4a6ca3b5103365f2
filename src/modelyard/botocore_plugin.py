"""A botocore client plugin that keeps every AWS call on the modelyard endpoint.

``AWS_ENDPOINT_URL`` redirects clients created without an explicit endpoint. The
SageMaker SDK, however, creates its STS clients with
``endpoint_url="https://sts.<region>.amazonaws.com"`` hard-coded (for
``default_bucket()`` and ``get_execution_role()``), which would leave the machine.
Enable this plugin with::

    export BOTOCORE_EXPERIMENTAL__PLUGINS=modelyard=modelyard.botocore_plugin

and requests addressed to ``*.amazonaws.com`` are re-addressed to ``AWS_ENDPOINT_URL``
before they are signed, so user code runs unchanged.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def initialize_client_plugin(client: Any) -> None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return
    target = urlsplit(endpoint)

    def readdress(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        on_aws = host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
        # A virtual-hosted S3 URL keeps its bucket in the host name; moving it would lose it.
        virtual_hosted_s3 = ".s3." in host or ".s3-" in host
        if on_aws and not virtual_hosted_s3:
            request.url = urlunsplit(
                (target.scheme, target.netloc, parts.path, parts.query, parts.fragment)
            )

    client.meta.events.register_first("before-sign", readdress)
