"""Inference experiments (shadow tests): created on a live endpoint, described, listed, and
stopped with the shadow promoted; a scheduled one cancelled before it starts; bad input."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant

BUCKET = "shadow-experiment-tests"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
PAYLOAD = json.dumps([[1.0, 2.0]])


@pytest.fixture(scope="module")
def clients(server):
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return sagemaker, s3, server.client("sagemaker-runtime")


@pytest.fixture(scope="module")
def setup(clients):
    sagemaker, s3, _ = clients
    suffix = uuid.uuid4().hex[:6]
    production = create_model(sagemaker, s3, BUCKET, f"exp-prod-{suffix}", 2)
    candidate = create_model(sagemaker, s3, BUCKET, f"exp-cand-{suffix}", 3)
    endpoint = f"exp-endpoint-{suffix}"
    create_endpoint(sagemaker, endpoint, [variant("Production", production, 1.0)])
    yield {"endpoint": endpoint, "production": production, "candidate": candidate}
    delete_endpoint(sagemaker, endpoint)


def model_variants(setup: dict) -> list[dict]:
    def one(name: str, model: str) -> dict:
        return {"VariantName": name, "ModelName": model, "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}}
    return [one("Production", setup["production"]), one("Shadow", setup["candidate"])]


def experiment(setup: dict, name: str, percentage: int = 100, **extra) -> dict:
    return {"Name": name, "Type": "ShadowMode", "RoleArn": ROLE,
            "EndpointName": setup["endpoint"], "ModelVariants": model_variants(setup),
            "ShadowModeConfig": {"SourceModelVariantName": "Production", "ShadowModelVariants": [
                {"ShadowModelVariantName": "Shadow", "SamplingPercentage": percentage}]},
            **extra}


def wait_status(sagemaker, name: str, wanted: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        description = sagemaker.describe_inference_experiment(Name=name)
        if description["Status"] == wanted:
            return description
        assert description["Status"] not in ("Cancelled", "Completed"), description
        if time.monotonic() > deadline:
            raise AssertionError(f"experiment {name} still {description['Status']}")
        time.sleep(0.25)


def invoke(runtime, endpoint: str) -> tuple[str, list]:
    response = runtime.invoke_endpoint(EndpointName=endpoint, Body=PAYLOAD,
                                       ContentType="application/json")
    return response["InvokedProductionVariant"], json.loads(response["Body"].read())


def error_of(call, **members) -> dict:
    with pytest.raises(ClientError) as caught:
        call(**members)
    return caught.value.response["Error"]


def test_bad_experiments_get_sagemakers_errors(clients, setup):
    sagemaker = clients[0]
    name = f"exp-bad-{uuid.uuid4().hex[:6]}"
    for percentage in (-1, 101):
        error = error_of(sagemaker.create_inference_experiment,
                         **experiment(setup, name, percentage))
        assert error["Code"] == "ValidationException", error
        assert "100" in error["Message"]
    wrong_shadow = experiment(setup, name)
    wrong_shadow["ShadowModeConfig"]["ShadowModelVariants"][0]["ShadowModelVariantName"] = "X"
    error = error_of(sagemaker.create_inference_experiment, **wrong_shadow)
    assert error["Code"] == "ValidationException" and "X" in error["Message"]
    error = error_of(sagemaker.create_inference_experiment,
                     **{**experiment(setup, name), "EndpointName": "no-such-endpoint"})
    assert error["Code"] == "ValidationException" and "no-such-endpoint" in error["Message"]
    too_long = experiment(setup, name, Schedule={"EndTime": datetime.now(timezone.utc)
                                                 + timedelta(days=31)})
    error = error_of(sagemaker.create_inference_experiment, **too_long)
    assert error["Code"] == "ValidationException" and "30 days" in error["Message"]
    error = error_of(sagemaker.describe_inference_experiment, Name=name)
    assert error["Code"] == "ResourceNotFound"


def test_an_experiment_runs_then_stops_promoting_the_shadow(clients, setup):
    sagemaker, _, runtime = clients
    endpoint, name = setup["endpoint"], f"exp-promote-{uuid.uuid4().hex[:6]}"
    arn = sagemaker.create_inference_experiment(
        **experiment(setup, name, Description="try the x3 model"))["InferenceExperimentArn"]
    assert arn.endswith(f":inference-experiment/{name}")
    error = error_of(sagemaker.create_inference_experiment,
                     **experiment(setup, f"{name}-again"))
    assert error["Code"] == "ResourceInUse"  # one experiment per endpoint

    running = wait_status(sagemaker, name, "Running")
    schedule = running["Schedule"]
    assert timedelta(days=7) == schedule["EndTime"] - schedule["StartTime"]
    assert {v["VariantName"]: v["Status"] for v in running["ModelVariants"]} == {
        "Production": "InService", "Shadow": "InService"}
    assert running["EndpointMetadata"]["EndpointStatus"] == "InService"
    assert running["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] == 100
    listed = sagemaker.list_inference_experiments(NameContains=name)["InferenceExperiments"]
    assert [(item["Name"], item["Status"]) for item in listed] == [(name, "Running")]
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["Shadow"]
    for _ in range(5):  # the shadow gets copies; the caller, production's answers
        assert invoke(runtime, endpoint) == ("Production", [[2.0, 4.0]])

    # Only a Running experiment's end date can move; its start is fixed.
    sagemaker.update_inference_experiment(
        Name=name, Description="still trying",
        Schedule={"EndTime": schedule["StartTime"] + timedelta(days=3)})
    updated = sagemaker.describe_inference_experiment(Name=name)
    assert updated["Status"] == "Running" and updated["Description"] == "still trying"
    # (boto3 sends whole seconds)
    assert abs(updated["Schedule"]["EndTime"] - schedule["StartTime"] - timedelta(days=3)) \
        < timedelta(seconds=1)
    error = error_of(sagemaker.stop_inference_experiment, Name=name,
                     ModelVariantActions={"Production": "Promote"})
    assert error["Code"] == "ValidationException" and "only the shadow" in error["Message"]

    sagemaker.stop_inference_experiment(
        Name=name, ModelVariantActions={"Production": "Remove", "Shadow": "Promote"},
        DesiredState="Completed", Reason="the x3 model is better")
    done = wait_status(sagemaker, name, "Completed")
    assert done["StatusReason"] == "the x3 model is better" and "CompletionTime" in done
    assert {v["VariantName"]: v["Status"] for v in done["ModelVariants"]} == {
        "Production": "Deleted", "Shadow": "InService"}
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["Shadow"]
    assert "ShadowProductionVariants" not in described
    assert invoke(runtime, endpoint) == ("Shadow", [[3.0, 6.0]])  # the promoted model answers
    error = error_of(sagemaker.stop_inference_experiment, Name=name,
                     ModelVariantActions={"Shadow": "Retain"})
    assert error["Code"] == "ConflictException"


def test_a_scheduled_experiment_waits_and_can_be_cancelled(clients, setup):
    sagemaker = clients[0]
    name = f"exp-later-{uuid.uuid4().hex[:6]}"
    start = datetime.now(timezone.utc) + timedelta(days=1)
    sagemaker.create_inference_experiment(**experiment(
        setup, name, 25, Schedule={"StartTime": start, "EndTime": start + timedelta(days=2)}))
    wait_status(sagemaker, name, "Created")
    sagemaker.update_inference_experiment(Name=name, ShadowModeConfig={
        "SourceModelVariantName": "Production",
        "ShadowModelVariants": [{"ShadowModelVariantName": "Shadow", "SamplingPercentage": 50}]})
    described = sagemaker.describe_inference_experiment(Name=name)
    assert described["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] == 50
    sagemaker.stop_inference_experiment(Name=name, ModelVariantActions={"Shadow": "Remove"},
                                        DesiredState="Cancelled", Reason="not needed")
    cancelled = sagemaker.describe_inference_experiment(Name=name)
    assert (cancelled["Status"], cancelled["StatusReason"]) == ("Cancelled", "not needed")
    listed = sagemaker.list_inference_experiments(StatusEquals="Cancelled",
                                                  NameContains=name)["InferenceExperiments"]
    assert [item["Name"] for item in listed] == [name]
