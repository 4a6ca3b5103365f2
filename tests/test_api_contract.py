"""The wire contract: validation from botocore's model, AWS error shapes, SigV4, limits."""

from __future__ import annotations

import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError



def unvalidated_client(server, service: str):
    """A client that sends what it is given, so the server's own validation is exercised."""
    return server.client(service, parameter_validation=False)


def error_of(call) -> dict:
    with pytest.raises(ClientError) as raised:
        call()
    return {**raised.value.response["Error"],
            "status": raised.value.response["ResponseMetadata"]["HTTPStatusCode"]}


def test_missing_required_member_is_named(server):
    client = unvalidated_client(server, "sagemaker")
    error = error_of(lambda: client.create_model_package_group(ModelPackageGroupDescription="x"))
    assert error["Code"] == "ValidationException"
    assert error["status"] == 400
    assert "modelPackageGroupName" in error["Message"]
    assert "must not be null" in error["Message"]


def test_bad_enum_is_named_with_allowed_values(server):
    client = unvalidated_client(server, "sagemaker")
    error = error_of(lambda: client.list_model_package_groups(SortBy="Size"))
    assert error["Code"] == "ValidationException"
    assert "'Size' at 'sortBy'" in error["Message"]
    assert "[Name, CreationTime]" in error["Message"]


def test_name_breaking_the_pattern_is_named(server):
    client = unvalidated_client(server, "sagemaker")
    error = error_of(lambda: client.create_model_package_group(ModelPackageGroupName="no spaces!"))
    assert error["Code"] == "ValidationException"
    assert "'no spaces!' at 'modelPackageGroupName'" in error["Message"]
    assert "regular expression pattern" in error["Message"]


def test_nested_members_and_several_errors_are_all_reported(server):
    client = unvalidated_client(server, "sagemaker")
    error = error_of(lambda: client.create_training_job(
        TrainingJobName="ok-name",
        RoleArn="arn:aws:iam::123456789012:role/r",
        AlgorithmSpecification={"TrainingInputMode": "Sideways", "TrainingImage": "img"},
        OutputDataConfig={"S3OutputPath": "s3://b/p"},
        ResourceConfig={"InstanceType": "ml.warp.9000", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    ))
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("2 validation errors detected")
    assert "algorithmSpecification.trainingInputMode" in error["Message"]
    assert "resourceConfig.instanceType" in error["Message"]


def test_operation_not_built_yet_names_itself(server):
    error = error_of(lambda: server.client("sagemaker").list_clusters())
    assert error["Code"] == "NotImplemented"
    assert error["status"] == 501
    assert "ListClusters" in error["Message"]


def test_validation_failure_leaves_state_intact(server, unique_name):
    client = server.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=unique_name,
                                      ModelPackageGroupDescription="original")
    duplicate = error_of(lambda: client.create_model_package_group(
        ModelPackageGroupName=unique_name, ModelPackageGroupDescription="replacement"))
    assert duplicate["Code"] == "ValidationException"
    assert unique_name in duplicate["Message"]
    described = client.describe_model_package_group(ModelPackageGroupName=unique_name)
    assert described["ModelPackageGroupDescription"] == "original"


@pytest.mark.parametrize("service,call,code", [
    ("sagemaker", lambda c: c.list_model_package_groups(), "InvalidSignatureException"),
    ("sts", lambda c: c.get_caller_identity(), "SignatureDoesNotMatch"),
    ("s3", lambda c: c.list_buckets(), "SignatureDoesNotMatch"),
])
def test_wrong_secret_is_refused(server, service, call, code):
    client = server.client(service, secret_key="not-the-secret")
    error = error_of(lambda: call(client))
    assert (error["Code"], error["status"]) == (code, 403)


@pytest.mark.parametrize("service,call,code", [
    ("sagemaker", lambda c: c.list_model_package_groups(), "UnrecognizedClientException"),
    ("sts", lambda c: c.get_caller_identity(), "InvalidClientTokenId"),
    ("s3", lambda c: c.list_buckets(), "InvalidAccessKeyId"),
])
def test_unknown_access_key_is_refused(server, service, call, code):
    client = server.client(service, access_key="AKIANOTKNOWN00000000")
    error = error_of(lambda: call(client))
    assert (error["Code"], error["status"]) == (code, 403)


def test_unsigned_requests_are_refused_in_each_protocol(server):
    json_call = requests.post(server.endpoint_url, data="{}",
                              headers={"X-Amz-Target": "SageMaker.ListModelPackageGroups",
                                       "Content-Type": "application/x-amz-json-1.1"})
    assert json_call.status_code == 403
    assert json_call.json()["__type"] == "MissingAuthenticationTokenException"
    query_call = requests.post(server.endpoint_url, data={"Action": "GetCallerIdentity"})
    assert query_call.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in query_call.text
    s3_call = requests.get(f"{server.endpoint_url}/some-bucket/some-key")
    assert s3_call.status_code == 403
    assert "<Code>AccessDenied</Code>" in s3_call.text


def test_health_needs_no_signature_and_nothing_else_is_open(server):
    assert requests.get(f"{server.endpoint_url}/_modelyard/health").status_code == 200
    assert requests.get(f"{server.endpoint_url}/").status_code == 403
    # SNS's confirmation link is open, as on AWS, but does nothing without a valid token.
    link = requests.get(f"{server.endpoint_url}/_modelyard/sns", params={
        "Action": "ConfirmSubscription", "Token": "0" * 128,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:nothing"})
    assert link.status_code in (400, 404) and "Error" in link.text
    assert requests.get(f"{server.endpoint_url}/_modelyard/sns",
                        params={"Action": "ListTopics"}).status_code == 400


def test_presigned_urls_work_until_they_expire(server, s3, unique_name):
    s3.create_bucket(Bucket=unique_name)
    s3.put_object(Bucket=unique_name, Key="report.txt", Body=b"quarterly numbers")
    fresh = s3.generate_presigned_url(
        "get_object", Params={"Bucket": unique_name, "Key": "report.txt"}, ExpiresIn=60)
    assert requests.get(fresh).content == b"quarterly numbers"
    tampered = fresh.replace("report.txt", "other.txt")
    assert requests.get(tampered).status_code == 403
    short = s3.generate_presigned_url(
        "get_object", Params={"Bucket": unique_name, "Key": "report.txt"}, ExpiresIn=1)
    time.sleep(2.1)
    expired = requests.get(short)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "expired" in expired.text


def test_api_requests_are_bounded(server):
    client = unvalidated_client(server, "sagemaker")
    huge = "x" * (17 * 1024 * 1024)
    error = error_of(lambda: client.create_model_package_group(
        ModelPackageGroupName="too-big", ModelPackageGroupDescription=huge))
    assert error["status"] == 413
    assert error["Code"] == "RequestEntityTooLarge"


def test_model_package_groups_list_filter_sort_and_paginate(server, unique_name):
    client = server.client("sagemaker")
    names = [f"{unique_name}-{index}" for index in range(5)]
    before = time.time() - 1
    for name in names:
        client.create_model_package_group(ModelPackageGroupName=name)
    by_arn = client.describe_model_package_group(
        ModelPackageGroupName=client.describe_model_package_group(
            ModelPackageGroupName=names[0])["ModelPackageGroupArn"])
    assert by_arn["ModelPackageGroupName"] == names[0]

    seen, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = client.list_model_package_groups(
            NameContains=unique_name, SortBy="Name", SortOrder="Ascending", MaxResults=2, **kwargs)
        seen += [item["ModelPackageGroupName"] for item in page["ModelPackageGroupSummaryList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names

    newest_first = client.list_model_package_groups(NameContains=unique_name,
                                                    CreationTimeAfter=before)
    assert [item["ModelPackageGroupName"] for item in newest_first["ModelPackageGroupSummaryList"]] \
        == list(reversed(names))
    assert client.list_model_package_groups(
        NameContains=unique_name, CreationTimeBefore=before)["ModelPackageGroupSummaryList"] == []

    bad_token = error_of(lambda: client.list_model_package_groups(NextToken="garbage"))
    assert bad_token["Code"] == "ValidationException"

    client.delete_model_package_group(ModelPackageGroupName=names[0])
    missing = error_of(lambda: client.describe_model_package_group(ModelPackageGroupName=names[0]))
    assert missing["Code"] == "ValidationException"
    assert names[0] in missing["Message"]


def test_clients_configured_only_by_environment_reach_the_server(server):
    # conftest exported AWS_ENDPOINT_URL & co. as a user would.
    identity = boto3.session.Session().client("sts").get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/ModelyardExecutionRole/modelyard")
    assert len(identity["Account"]) == 12
