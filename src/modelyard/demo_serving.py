"""The demo's second half: serve the approved ticket classifier, then retire it.

Deploys the approved model package version to a real-time endpoint (by package ARN, as a
team deploys from the registry), classifies a few real tickets of the test split, rolls a
second version out behind deployment guardrails (a 10 % canary with short bakes, watched by
an alarm on Invocation5XXErrors) and a deliberately broken third one that the alarm rolls
back (demo_rollout.py prints each rollout's timeline of traffic shares), runs a batch
transform over the whole test split and scores it, and deletes the endpoint.
"""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING

from .demo_rollout import guarded_rollouts

if TYPE_CHECKING:
    from .demo import Steps

ENDPOINT = "demo-ticket-classifier"
LABEL = "__label__"


def serve_ticket_classifier(steps: "Steps", bucket: str, package_arn: str | None,
                            test_split: str) -> None:
    """Every step here goes through the SageMaker SDK, as a user's code would."""
    import boto3
    import sagemaker
    from sagemaker import ModelPackage
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    if package_arn is None:
        print("  (no approved version: nothing to serve)")
        return
    session = sagemaker.Session()
    tickets = _test_tickets(session, test_split)
    model = ModelPackage(role=sagemaker.get_execution_role(), model_package_arn=package_arn,
                         sagemaker_session=session)

    def deploy() -> str:
        # The SDK's own wait polls every 30 s; the demo follows the endpoint more closely.
        model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                     endpoint_name=ENDPOINT, wait=False)
        client = boto3.client("sagemaker")
        while True:
            status = client.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"]
            if status != "Creating":
                break
            time.sleep(0.5)
        if status != "InService":
            reason = client.describe_endpoint(EndpointName=ENDPOINT).get("FailureReason")
            raise SystemExit(f"endpoint {ENDPOINT} ended {status}: {reason}")
        return f"{ENDPOINT} {status}"

    steps.run("deploy the approved version", deploy, str)
    predictor = Predictor(ENDPOINT, sagemaker_session=session, serializer=JSONSerializer(),
                          deserializer=JSONDeserializer())
    try:
        steps.run("classify five real tickets", lambda: _classify(predictor, tickets), str)
        guarded_rollouts(steps, session, bucket, ENDPOINT, model.name,
                         [text for _, text in tickets[:50]])
        steps.run("batch transform over the test split",
                  lambda: _batch_transform(session, bucket, model.name, tickets), str)
    finally:
        steps.run("delete the endpoint", lambda: _delete(predictor), str)


def _test_tickets(session, test_split: str) -> list[tuple[str, str]]:  # noqa: ANN001
    """(category, text) pairs of the test split's fastText lines."""
    from sagemaker.s3 import S3Downloader

    pairs = []
    for uri in S3Downloader.list(test_split, sagemaker_session=session):
        for line in S3Downloader.read_file(uri, sagemaker_session=session).splitlines():
            label, _, text = line.partition(" ")
            if label.startswith(LABEL) and text:
                pairs.append((label[len(LABEL):], text))
    return pairs


def _classify(predictor, tickets: list[tuple[str, str]]) -> str:  # noqa: ANN001
    chosen = random.Random(7).sample(tickets, 5)
    answers = predictor.predict({"instances": [text for _, text in chosen]})
    right = 0
    for (category, text), answer in zip(chosen, answers):
        predicted = answer["label"][0][len(LABEL):]
        right += predicted == category
        verdict = "✓" if predicted == category else f"✗ (labelled {category})"
        print(f"      {predicted:<26} {answer['prob'][0]:.2f}  {text[:50]!r} {verdict}")
    return f"{right} of 5 as labelled"


def _batch_transform(session, bucket: str, model_name: str,  # noqa: ANN001
                     tickets: list[tuple[str, str]]) -> str:
    """BlazingText's batch format: JSON Lines in, one {"label", "prob"} line out per ticket."""
    from sagemaker.s3 import S3Downloader
    from sagemaker.transformer import Transformer

    from .demo import _follow

    body = "".join(json.dumps({"source": text}) + "\n" for _, text in tickets)
    data = session.upload_string_as_file_body(body, bucket, "demo/transform/in/test.jsonl")
    transformer = Transformer(
        model_name=model_name, instance_count=1, instance_type="ml.m5.xlarge",
        strategy="MultiRecord", assemble_with="Line", accept="application/jsonlines",
        output_path=f"s3://{bucket}/demo/transform/out", sagemaker_session=session,
        base_transform_job_name="demo-transform")
    transformer.transform(data, content_type="application/jsonlines", split_type="Line",
                          wait=False, logs=False)
    _follow(transformer.latest_transform_job.job_name, "transform")
    output = S3Downloader.read_file(f"s3://{bucket}/demo/transform/out/test.jsonl.out",
                                    sagemaker_session=session)
    answers = [json.loads(line) for line in output.splitlines() if line.strip()]
    if len(answers) != len(tickets):
        return f"{len(answers)} answers for {len(tickets)} tickets"
    right = sum(answer["label"][0][len(LABEL):] == category
                for (category, _), answer in zip(tickets, answers))
    return f"accuracy {right / len(tickets):.3f} on {len(tickets):,} tickets"


def _delete(predictor) -> str:  # noqa: ANN001
    predictor.delete_endpoint(delete_endpoint_config=True)
    return f"{ENDPOINT} deleted"
