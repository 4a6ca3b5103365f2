"""IAM roles through boto3 and the SageMaker SDK: stored, listed, resolved by name.

Policies are stored and returned, not enforced; roles and their ARNs carry the server's
account, which ``MODELYARD_ACCOUNT_ID`` sets to the one a team's code hard-codes.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import SKLEARN_IMAGE, sdk_session
from server_process import ServerProcess

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
S3_READ = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                   "Resource": ["arn:aws:s3:::tickets", "arn:aws:s3:::tickets/*"]}],
}
FULL_ACCESS = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
SERVICE_ROLE_POLICY = (
    "arn:aws:iam::aws:policy/service-role/AmazonSageMakerServiceCatalogProductsUseRole")
HARD_CODED_ACCOUNT = "123456789012"


@pytest.fixture()
def iam(server):
    return server.client("iam")


@pytest.fixture()
def role(iam, unique_name):
    """A fresh role with the SageMaker trust policy."""
    iam.create_role(RoleName=unique_name, AssumeRolePolicyDocument=json.dumps(TRUST))
    return unique_name


def error_of(call, *args, **kwargs) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    response = raised.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


# --- roles -----------------------------------------------------------------------------------


def test_create_get_and_list_a_role(server, iam, unique_name):
    account = server.client("sts").get_caller_identity()["Account"]
    created = iam.create_role(
        RoleName=unique_name, Path="/service-role/", AssumeRolePolicyDocument=json.dumps(TRUST),
        Description="runs ticket jobs", MaxSessionDuration=7200,
        Tags=[{"Key": "team", "Value": "support"}],
    )["Role"]
    assert created["Arn"] == f"arn:aws:iam::{account}:role/service-role/{unique_name}"
    assert created["RoleId"].startswith("AROA") and len(created["RoleId"]) == 21
    assert created["AssumeRolePolicyDocument"] == TRUST  # botocore decodes IAM's URL-encoding

    # Names are unique regardless of case, and found regardless of case.
    fetched = iam.get_role(RoleName=unique_name.upper())["Role"]
    assert fetched["RoleName"] == unique_name
    assert {key: fetched[key] for key in ("Arn", "RoleId", "Path", "Description",
                                          "MaxSessionDuration", "Tags")} == {
        "Arn": created["Arn"], "RoleId": created["RoleId"], "Path": "/service-role/",
        "Description": "runs ticket jobs", "MaxSessionDuration": 7200,
        "Tags": [{"Key": "team", "Value": "support"}]}
    assert fetched["CreateDate"] == created["CreateDate"]

    listed = [r for r in iam.list_roles(PathPrefix="/service-role/")["Roles"]
              if r["RoleName"] == unique_name]
    assert len(listed) == 1
    assert listed[0]["Arn"] == created["Arn"] and "Tags" not in listed[0]  # as IAM lists roles


def test_create_role_errors_leave_the_account_as_it_was(iam, role, unique_name):
    original = iam.get_role(RoleName=role)["Role"]
    code, status, message = error_of(
        iam.create_role, RoleName=role.upper(), AssumeRolePolicyDocument=json.dumps(TRUST),
        Description="a second one")
    assert (code, status) == ("EntityAlreadyExists", 409)
    assert role.upper() in message
    assert iam.get_role(RoleName=role)["Role"] == original

    other = f"{unique_name}-x"
    for document, expected in [
        ("{not json", "invalid Json"),
        (json.dumps({"Statement": []}), "Statement"),
        (json.dumps({**TRUST, "Version": "2020-01-01"}), "version"),
        (json.dumps(S3_READ), "Resource"),  # a permissions policy is no trust policy
        (json.dumps({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}),
         "Principal"),
    ]:
        code, status, message = error_of(
            iam.create_role, RoleName=other, AssumeRolePolicyDocument=document)
        assert (code, status) == ("MalformedPolicyDocument", 400), message
        assert expected in message
    assert error_of(iam.get_role, RoleName=other)[:2] == ("NoSuchEntity", 404)

    code, status, message = error_of(
        iam.create_role, RoleName="has a space", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert (code, status) == ("ValidationError", 400)
    assert "roleName" in message
    code, status, _ = error_of(  # IAM names are ASCII
        iam.create_role, RoleName="r\u00f4le", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert (code, status) == ("ValidationError", 400)
    code, _, message = error_of(
        iam.create_role, RoleName=other, AssumeRolePolicyDocument=json.dumps(TRUST),
        PermissionsBoundary="arn:aws:iam::aws:boundary/whatever")
    assert code == "InvalidInput" and "is not valid" in message
    assert error_of(iam.get_role, RoleName=other)[0] == "NoSuchEntity"


def test_list_roles_pages_with_marker_and_filters_by_path(iam, unique_name):
    path = f"/{unique_name}/"
    names = [f"{unique_name}-{index}" for index in (3, 0, 4, 1, 2)]
    for name in names:
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.create_role(RoleName=f"{unique_name}-elsewhere", Path=f"/{unique_name}-other/",
                    AssumeRolePolicyDocument=json.dumps(TRUST))

    seen, marker, pages = [], None, 0
    while True:
        page = iam.list_roles(PathPrefix=path, MaxItems=2, **({"Marker": marker} if marker else {}))
        pages += 1
        seen += [r["RoleName"] for r in page["Roles"]]
        if not page["IsTruncated"]:
            assert "Marker" not in page
            break
        marker = page["Marker"]
    assert seen == sorted(names) and pages == 3

    # A role deleted between pages does not throw the listing off.
    first = iam.list_roles(PathPrefix=path, MaxItems=2)
    iam.delete_role(RoleName=first["Roles"][-1]["RoleName"])
    rest = iam.list_roles(PathPrefix=path, Marker=first["Marker"])["Roles"]
    assert [r["RoleName"] for r in rest] == sorted(names)[2:]

    paginated = [r["RoleName"] for page in iam.get_paginator("list_roles").paginate(
        PathPrefix=f"/{unique_name}", PaginationConfig={"PageSize": 1}) for r in page["Roles"]]
    assert paginated == sorted([n for n in names if n != first["Roles"][-1]["RoleName"]]
                               + [f"{unique_name}-elsewhere"])
    code, status, _ = error_of(iam.list_roles, Marker="not-a-marker")
    assert (code, status) == ("ValidationError", 400)


def test_update_assume_role_policy(iam, role):
    widened = {**TRUST, "Statement": [{**TRUST["Statement"][0], "Principal": {
        "Service": ["sagemaker.amazonaws.com", "events.amazonaws.com"]}}]}
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(widened))
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"] == widened

    code, status, _ = error_of(iam.update_assume_role_policy, RoleName=role,
                               PolicyDocument='{"Statement": "everything"}')
    assert (code, status) == ("MalformedPolicyDocument", 400)
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"] == widened


def test_managed_policies_attach_list_detach_and_block_delete(iam, role):
    iam.attach_role_policy(RoleName=role, PolicyArn=FULL_ACCESS)
    iam.attach_role_policy(RoleName=role, PolicyArn=SERVICE_ROLE_POLICY)
    iam.attach_role_policy(RoleName=role, PolicyArn=FULL_ACCESS)  # again: no error, no duplicate
    attached = iam.list_attached_role_policies(RoleName=role)
    assert attached["AttachedPolicies"] == [
        {"PolicyName": "AmazonSageMakerFullAccess", "PolicyArn": FULL_ACCESS},
        {"PolicyName": "AmazonSageMakerServiceCatalogProductsUseRole",
         "PolicyArn": SERVICE_ROLE_POLICY},
    ]
    assert attached["IsTruncated"] is False
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(
        RoleName=role, PathPrefix="/service-role/")["AttachedPolicies"]] == [SERVICE_ROLE_POLICY]
    first = iam.list_attached_role_policies(RoleName=role, MaxItems=1)
    assert first["IsTruncated"] is True and len(first["AttachedPolicies"]) == 1
    second = iam.list_attached_role_policies(RoleName=role, Marker=first["Marker"])
    assert second["AttachedPolicies"][0]["PolicyArn"] == SERVICE_ROLE_POLICY

    code, status, message = error_of(iam.delete_role, RoleName=role)
    assert (code, status) == ("DeleteConflict", 409)
    assert "detach" in message
    code, _, message = error_of(iam.attach_role_policy, RoleName=role,
                                PolicyArn="arn:aws:s3:::tickets")
    assert code == "InvalidInput" and "policy ARN looks like" in message
    code, status, _ = error_of(iam.detach_role_policy, RoleName=role,
                               PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    assert (code, status) == ("NoSuchEntity", 404)
    assert len(iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]) == 2

    iam.detach_role_policy(RoleName=role, PolicyArn=FULL_ACCESS)
    iam.detach_role_policy(RoleName=role, PolicyArn=SERVICE_ROLE_POLICY)
    iam.delete_role(RoleName=role)
    assert error_of(iam.get_role, RoleName=role)[:2] == ("NoSuchEntity", 404)


def test_inline_policies_put_get_list_delete_and_block_delete(iam, role):
    iam.put_role_policy(RoleName=role, PolicyName="read-tickets",
                        PolicyDocument=json.dumps(S3_READ))
    fetched = iam.get_role_policy(RoleName=role, PolicyName="read-tickets")
    assert (fetched["RoleName"], fetched["PolicyName"], fetched["PolicyDocument"]) == (
        role, "read-tickets", S3_READ)
    logs = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "logs:*",
                                                   "Resource": "*"}}
    iam.put_role_policy(RoleName=role, PolicyName="logs", PolicyDocument=json.dumps(logs))
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["logs", "read-tickets"]
    first = iam.list_role_policies(RoleName=role, MaxItems=1)
    assert first["PolicyNames"] == ["logs"] and first["IsTruncated"] is True
    assert iam.list_role_policies(RoleName=role, Marker=first["Marker"])["PolicyNames"] == [
        "read-tickets"]

    # Putting a policy under an existing name replaces it.
    iam.put_role_policy(RoleName=role, PolicyName="logs", PolicyDocument=json.dumps(
        {**logs, "Statement": {**logs["Statement"], "Effect": "Deny"}}))
    assert iam.get_role_policy(RoleName=role, PolicyName="logs")[
        "PolicyDocument"]["Statement"]["Effect"] == "Deny"

    for document, expected in [
        ({**S3_READ, "Statement": [{**S3_READ["Statement"][0], "Principal": "*"}]}, "principal"),
        ({"Statement": [{"Effect": "Allow", "Action": "s3:*"}]}, "resources"),
        ({"Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}, "effect"),
    ]:
        code, status, message = error_of(iam.put_role_policy, RoleName=role, PolicyName="bad",
                                         PolicyDocument=json.dumps(document))
        assert (code, status) == ("MalformedPolicyDocument", 400) and expected in message
    huge = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": [f"arn:aws:s3:::bucket-{i:05d}/*" for i in range(400)]}]}
    code, status, _ = error_of(iam.put_role_policy, RoleName=role, PolicyName="huge",
                               PolicyDocument=json.dumps(huge))
    assert (code, status) == ("LimitExceeded", 409)
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["logs", "read-tickets"]

    code, status, message = error_of(iam.delete_role, RoleName=role)
    assert (code, status) == ("DeleteConflict", 409) and "delete policies" in message
    assert error_of(iam.get_role_policy, RoleName=role, PolicyName="nope")[:2] == (
        "NoSuchEntity", 404)
    assert error_of(iam.delete_role_policy, RoleName=role, PolicyName="nope")[:2] == (
        "NoSuchEntity", 404)
    iam.delete_role_policy(RoleName=role, PolicyName="logs")
    iam.delete_role_policy(RoleName=role, PolicyName="read-tickets")
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    iam.delete_role(RoleName=role)


@pytest.mark.parametrize("call", [
    lambda iam, name: iam.get_role(RoleName=name),
    lambda iam, name: iam.delete_role(RoleName=name),
    lambda iam, name: iam.update_assume_role_policy(RoleName=name,
                                                    PolicyDocument=json.dumps(TRUST)),
    lambda iam, name: iam.attach_role_policy(RoleName=name, PolicyArn=FULL_ACCESS),
    lambda iam, name: iam.detach_role_policy(RoleName=name, PolicyArn=FULL_ACCESS),
    lambda iam, name: iam.list_attached_role_policies(RoleName=name),
    lambda iam, name: iam.put_role_policy(RoleName=name, PolicyName="p",
                                          PolicyDocument=json.dumps(S3_READ)),
    lambda iam, name: iam.get_role_policy(RoleName=name, PolicyName="p"),
    lambda iam, name: iam.delete_role_policy(RoleName=name, PolicyName="p"),
    lambda iam, name: iam.list_role_policies(RoleName=name),
], ids=["get", "delete", "trust", "attach", "detach", "list-attached", "put", "get-inline",
        "delete-inline", "list-inline"])
def test_operations_on_a_missing_role_answer_no_such_entity(iam, unique_name, call):
    code, status, message = error_of(call, iam, unique_name)
    assert (code, status) == ("NoSuchEntity", 404)
    assert unique_name in message
    assert error_of(iam.get_role, RoleName=unique_name)[0] == "NoSuchEntity"  # nothing created


def test_the_built_in_execution_role_stays(server, iam):
    import sagemaker

    role = sagemaker.get_execution_role(sagemaker_session=sdk_session())
    account = server.client("sts").get_caller_identity()["Account"]
    assert role == f"arn:aws:iam::{account}:role/ModelyardExecutionRole"
    assert "ModelyardExecutionRole" in [
        r["RoleName"] for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]]
    code, _, message = error_of(iam.delete_role, RoleName="ModelyardExecutionRole")
    assert code == "UnmodifiableEntity" and "get_execution_role" in message
    assert iam.get_role(RoleName="ModelyardExecutionRole")["Role"]["Arn"] == role


def test_roles_and_their_policies_survive_a_restart(tmp_path):
    server = ServerProcess.start(tmp_path / "data")
    try:
        iam = server.client("iam")
        iam.create_role(RoleName="Durable", Path="/teams/",
                        AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.attach_role_policy(RoleName="Durable", PolicyArn=FULL_ACCESS)
        iam.put_role_policy(RoleName="Durable", PolicyName="read-tickets",
                            PolicyDocument=json.dumps(S3_READ))
        before = iam.get_role(RoleName="Durable")["Role"]
    finally:
        server.kill()
    restarted = ServerProcess.start(tmp_path / "data", port=server.port)
    try:
        iam = restarted.client("iam")
        assert iam.get_role(RoleName="Durable")["Role"] == before
        assert [p["PolicyArn"] for p in iam.list_attached_role_policies(
            RoleName="Durable")["AttachedPolicies"]] == [FULL_ACCESS]
        assert iam.get_role_policy(RoleName="Durable", PolicyName="read-tickets")[
            "PolicyDocument"] == S3_READ
        assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == [
            "Durable", "ModelyardExecutionRole"]
    finally:
        restarted.stop()


# --- roles in SageMaker requests -------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import os
    with open("/opt/ml/processing/output/role.txt", "w") as handle:
        handle.write("ran")
    print("processing ran")
""")


def run_processing_job(session, role: str, bucket: str, prefix: str, tmp_path):
    """Unchanged SDK code: a ScriptProcessor given ``role`` as a team's code passes it."""
    from sagemaker.processing import ProcessingOutput, ScriptProcessor

    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    processor = ScriptProcessor(
        image_uri=SKLEARN_IMAGE, command=["python3"], role=role, instance_count=1,
        instance_type="ml.m5.large", sagemaker_session=session)
    processor.run(code=str(script), outputs=[ProcessingOutput(
        source="/opt/ml/processing/output", destination=f"s3://{bucket}/{prefix}/out")],
        wait=True, logs=False)
    return processor.latest_job.describe()


def test_sdk_code_passing_a_role_name_runs_a_job(server, iam, tmp_path, unique_name):
    iam.create_role(RoleName="SageMakerRole", Path="/service-role/",
                    AssumeRolePolicyDocument=json.dumps(TRUST))
    try:
        arn = iam.get_role(RoleName="SageMakerRole")["Role"]["Arn"]
        session = sdk_session()
        bucket = session.default_bucket()
        job = run_processing_job(session, "SageMakerRole", bucket, unique_name, tmp_path)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        assert job["RoleArn"] == arn  # resolved through GetRole, path included
        body = server.client("s3").get_object(Bucket=bucket, Key=f"{unique_name}/out/role.txt")
        assert body["Body"].read() == b"ran"
    finally:
        iam.delete_role(RoleName="SageMakerRole")


def test_an_invalid_role_arn_is_refused_with_what_a_role_arn_looks_like(
        sagemaker_client, unique_name):
    request = {
        "ProcessingJobName": unique_name,
        "AppSpecification": {"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3"]},
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
    }
    for wrong in ("arn:aws:iam::12345:role/SageMakerRole", "arn:aws:iam::123456789012:user/me"):
        code, status, message = error_of(
            sagemaker_client.create_processing_job, RoleArn=wrong, **request)
        assert (code, status) == ("ValidationException", 400)
        assert "arn:aws:iam::<12-digit account id>:role/" in message
    assert error_of(sagemaker_client.describe_processing_job,
                    ProcessingJobName=unique_name)[0] == "ValidationException"


def test_a_server_keeps_the_account_id_the_code_hard_codes(tmp_path, monkeypatch, unique_name):
    import sagemaker

    server = ServerProcess.start(tmp_path / "data", MODELYARD_ACCOUNT_ID=HARD_CODED_ACCOUNT)
    try:
        # All of the client settings: under xdist this may be a worker's first test, before
        # the session server's fixture exported any.
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        assert server.client("sts").get_caller_identity()["Account"] == HARD_CODED_ACCOUNT
        role_arn = f"arn:aws:iam::{HARD_CODED_ACCOUNT}:role/SageMakerRole"
        created = server.client("iam").create_role(
            RoleName="SageMakerRole", AssumeRolePolicyDocument=json.dumps(TRUST))
        assert created["Role"]["Arn"] == role_arn

        session = sdk_session()
        assert sagemaker.get_execution_role(sagemaker_session=session) == (
            f"arn:aws:iam::{HARD_CODED_ACCOUNT}:role/ModelyardExecutionRole")
        bucket = session.default_bucket()
        assert bucket == f"sagemaker-us-east-1-{HARD_CODED_ACCOUNT}"
        job = run_processing_job(session, role_arn, bucket, unique_name, tmp_path)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        assert job["RoleArn"] == role_arn
        assert job["ProcessingJobArn"].startswith(
            f"arn:aws:sagemaker:us-east-1:{HARD_CODED_ACCOUNT}:processing-job/")
    finally:
        server.stop()


def test_an_account_id_that_is_not_twelve_digits_stops_the_server(tmp_path):
    with pytest.raises(RuntimeError) as raised:
        ServerProcess.start(tmp_path / "data", MODELYARD_ACCOUNT_ID="1234-5678")
    assert "MODELYARD_ACCOUNT_ID must be an AWS account id, 12 digits" in str(raised.value)
