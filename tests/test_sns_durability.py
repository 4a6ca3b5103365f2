"""An SNS delivery survives kill -9 of the server between Publish and delivery."""

from __future__ import annotations

import time

from server_process import ServerProcess
from sns_subscriber import Subscriber


def test_http_delivery_survives_sigkill_between_publish_and_delivery(tmp_path):
    server = ServerProcess.start(tmp_path)
    with Subscriber() as endpoint:
        try:
            sns = server.client("sns")
            topic = sns.create_topic(Name="durable-alerts")["TopicArn"]
            sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
            token = endpoint.wait_for("SubscriptionConfirmation")[0].json["Token"]
            subscription = sns.confirm_subscription(TopicArn=topic, Token=token)[
                "SubscriptionArn"]
            # The subscriber is down: the first attempt fails and is retried after a
            # backoff; the server dies before it gets there.
            endpoint.down = True
            message_id = sns.publish(TopicArn=topic, Message="survive me", Subject="Durable")[
                "MessageId"]
            server.kill()
        except BaseException:
            server.stop()
            raise
        endpoint.down = False
        restarted = ServerProcess.start(tmp_path)
        try:
            (notification,) = endpoint.wait_for("Notification", timeout=60)
            envelope = notification.json
            assert envelope["MessageId"] == message_id and envelope["Message"] == "survive me"
            assert notification.headers["x-amz-sns-subscription-arn"] == subscription
            # Delivered once: nothing else arrives after a further retry interval.
            time.sleep(2.5)
            assert len(endpoint.of_type("Notification")) == 1
        finally:
            restarted.stop()


def test_http_delivery_is_retried_until_the_subscriber_listens(tmp_path):
    server = ServerProcess.start(tmp_path)
    try:
        sns = server.client("sns")
        topic = sns.create_topic(Name="late-subscriber")["TopicArn"]
        with Subscriber() as endpoint:
            sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
            token = endpoint.wait_for("SubscriptionConfirmation")[0].json["Token"]
            sns.confirm_subscription(TopicArn=topic, Token=token)
            endpoint.status = 503
            message_id = sns.publish(TopicArn=topic, Message="try again")["MessageId"]
            endpoint.wait_for("Notification", timeout=30)  # the first attempt: 503
            endpoint.status = 200
            # Retried until answered 200 (on a loaded machine a retry may come before the
            # switch and get a 503 too).
            deadline = time.monotonic() + 60
            while not any(item.status == 200 for item in endpoint.of_type("Notification")):
                assert time.monotonic() < deadline, "no retry after the subscriber recovered"
                time.sleep(0.1)
            attempts = endpoint.of_type("Notification")
            assert attempts[0].status == 503 and attempts[-1].status == 200
            assert {item.json["MessageId"] for item in attempts} == {message_id}
            time.sleep(6)  # the next backoff (5 s) passes with no further attempt
            assert len(endpoint.of_type("Notification")) == len(attempts)
    finally:
        server.stop()
