"""The unauthenticated GET route that SNS messages link to (``topics.WEB_PATH``).

On AWS, a subscriber confirms by visiting the SubscribeURL and leaves by visiting the
UnsubscribeURL; neither carries a signature. modelyard's messages point both at
``GET /_modelyard/sns?Action=ConfirmSubscription&TopicArn=..&Token=..`` and
``GET /_modelyard/sns?Action=Unsubscribe&SubscriptionArn=..``, answered with the same
XML as the signed API. Mount it in app.py:

    Route("/_modelyard/sns", sns_web.endpoint(platform), methods=["GET"])
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..api import query
from ..api.errors import AwsError
from ..api.shapes import operation_model, service_model
from . import subscriptions

if TYPE_CHECKING:
    from ..platform import Platform


def endpoint(platform: "Platform") -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint answering the SubscribeURL and UnsubscribeURL of SNS messages."""

    async def handle(request: Request) -> Response:
        request_id = uuid.uuid4().hex
        params = request.query_params
        action = params.get("Action", "")
        try:
            if action == "ConfirmSubscription":
                arn = await run_in_threadpool(
                    subscriptions.confirm, platform, params.get("TopicArn", ""),
                    params.get("Token", ""))
                result = {"SubscriptionArn": arn}
            elif action == "Unsubscribe":
                await run_in_threadpool(lambda: subscriptions.unsubscribe(
                    platform, params.get("SubscriptionArn", ""), signed=False))
                result = {}
            else:
                raise AwsError("InvalidAction", "This link only confirms (Action="
                               "ConfirmSubscription) or ends (Action=Unsubscribe) an SNS "
                               "subscription.")
        except AwsError as error:
            return query.render_error(error, request_id)
        namespace = service_model("sns").metadata.get("xmlNamespace", "")
        return query.render_result(action, operation_model("sns", action).output_shape,
                                   result, namespace, request_id)

    return handle
