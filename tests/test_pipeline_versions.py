"""Pipeline versions: every changed definition is kept, and an execution can run any of them.

The pipelines here run no jobs: a false condition leads to a Fail step whose message names
the version, so the step's ErrorMessage shows which definition an execution ran.
"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import sdk_session, wait_for_status
from server_process import ServerProcess

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"


def sdk_pipeline(name: str, message: str):
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionEquals
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.parameters import ParameterInteger
    from sagemaker.workflow.pipeline import Pipeline

    number = ParameterInteger(name="MyInt", default_value=2)
    condition = ConditionStep(name="Check", conditions=[ConditionEquals(left=number, right=1)],
                              if_steps=[],
                              else_steps=[FailStep(name="Report", error_message=message)])
    return Pipeline(name=name, parameters=[number], steps=[condition],
                    sagemaker_session=sdk_session())


def definition(message: str) -> str:
    return json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "Report", "Type": "Fail", "Arguments": {"ErrorMessage": message}}]})


def reported(client, execution_arn: str) -> str:
    """Wait for the execution to end; the message its Fail step reported."""
    wait_for_status(lambda: client.describe_pipeline_execution(
        PipelineExecutionArn=execution_arn), "PipelineExecutionStatus",
        {"Succeeded", "Failed", "Stopped"}, timeout=180)
    steps = {step["StepName"]: step for step in client.list_pipeline_execution_steps(
        PipelineExecutionArn=execution_arn)["PipelineExecutionSteps"]}
    return steps["Report"]["Metadata"]["Fail"]["ErrorMessage"]


def version_ids(client, name: str, **extra) -> list[int]:
    return [version["PipelineVersionId"] for version in client.list_pipeline_versions(
        PipelineName=name, **extra)["PipelineVersionSummaries"]]


def test_upsert_twice_makes_two_versions_and_version_one_still_runs(sagemaker_client, unique_name):
    first = sdk_pipeline(unique_name, "version one")
    first.upsert(role_arn=ROLE)
    second = sdk_pipeline(unique_name, "version two")
    response = second.upsert(role_arn=ROLE)
    assert response["PipelineVersionId"] == 2
    assert second.upsert(role_arn=ROLE)["PipelineVersionId"] == 2  # unchanged: no new version
    # A new description alone is not a new version either.
    assert second.upsert(role_arn=ROLE, description="nightly")["PipelineVersionId"] == 2

    listed = second.list_pipeline_versions()["PipelineVersionSummaries"]
    assert [version["PipelineVersionId"] for version in listed] == [2, 1]  # newest first
    assert all(version["PipelineArn"] == response["PipelineArn"] for version in listed)
    assert second.latest_pipeline_version_id == 2
    assert version_ids(sagemaker_client, unique_name, SortOrder="Ascending") == [1, 2]
    assert "version one" in second.describe(pipeline_version_id=1)["PipelineDefinition"]
    assert "version two" in second.describe()["PipelineDefinition"]
    assert second.describe()["PipelineDescription"] == "nightly"

    old = second.start(pipeline_version_id=1)
    assert old.describe()["PipelineVersionId"] == 1
    assert reported(sagemaker_client, old.arn) == "version one"
    assert "version one" in sagemaker_client.describe_pipeline_definition_for_execution(
        PipelineExecutionArn=old.arn)["PipelineDefinition"]
    latest = second.start()
    assert latest.describe()["PipelineVersionId"] == 2
    assert reported(sagemaker_client, latest.arn) == "version two"

    by_id = {version["PipelineVersionId"]: version
             for version in second.list_pipeline_versions()["PipelineVersionSummaries"]}
    assert by_id[1]["LastExecutionPipelineExecutionArn"] == old.arn
    assert by_id[2]["LastExecutionPipelineExecutionArn"] == latest.arn


def test_update_pipeline_version_names_and_describes_a_version(sagemaker_client, unique_name):
    arn = sagemaker_client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                                           PipelineDefinition=definition("one"))["PipelineArn"]
    sagemaker_client.update_pipeline(PipelineName=unique_name, PipelineDefinition=definition("two"))
    response = sagemaker_client.update_pipeline_version(
        PipelineArn=arn, PipelineVersionId=1, PipelineVersionDisplayName="baseline",
        PipelineVersionDescription="the first definition")
    assert response == {"PipelineArn": arn, "PipelineVersionId": 1,
                        "ResponseMetadata": response["ResponseMetadata"]}

    one = sagemaker_client.describe_pipeline(PipelineName=unique_name, PipelineVersionId=1)
    assert one["PipelineVersionDisplayName"] == "baseline"
    assert one["PipelineVersionDescription"] == "the first definition"
    assert one["PipelineDefinition"] == definition("one")
    latest = sagemaker_client.describe_pipeline(PipelineName=unique_name)
    assert latest["PipelineDefinition"] == definition("two")
    assert "PipelineVersionDisplayName" not in latest
    summaries = {version["PipelineVersionId"]: version for version in
                 sagemaker_client.list_pipeline_versions(
                     PipelineName=arn)["PipelineVersionSummaries"]}
    assert summaries[1]["PipelineVersionDisplayName"] == "baseline"
    assert summaries[1]["PipelineVersionDescription"] == "the first definition"
    assert "PipelineVersionDisplayName" not in summaries[2]


def test_unknown_versions_are_refused_naming_the_version(sagemaker_client, unique_name):
    arn = sagemaker_client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                                           PipelineDefinition=definition("one"))["PipelineArn"]
    calls = [
        lambda: sagemaker_client.describe_pipeline(PipelineName=unique_name, PipelineVersionId=7),
        lambda: sagemaker_client.update_pipeline_version(
            PipelineArn=arn, PipelineVersionId=7, PipelineVersionDisplayName="seven"),
        lambda: sagemaker_client.start_pipeline_execution(
            PipelineName=unique_name, PipelineVersionId=7, ClientRequestToken=uuid.uuid4().hex),
    ]
    for call in calls:
        with pytest.raises(ClientError) as raised:
            call()
        error = raised.value.response["Error"]
        assert error["Code"] == "ResourceNotFound"
        assert "no version 7" in error["Message"] and "1 to 1" in error["Message"]
    assert sagemaker_client.list_pipeline_executions(
        PipelineName=unique_name)["PipelineExecutionSummaries"] == []


def test_versions_page_and_start_again_at_one_after_delete(sagemaker_client, unique_name):
    sagemaker_client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                                     PipelineDefinition=definition("one"))
    for message in ("two", "three"):
        sagemaker_client.update_pipeline(PipelineName=unique_name,
                                         PipelineDefinition=definition(message))
    pages, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = sagemaker_client.list_pipeline_versions(PipelineName=unique_name, MaxResults=2,
                                                       **extra)
        pages.append([version["PipelineVersionId"] for version in page["PipelineVersionSummaries"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [[3, 2], [1]]

    sagemaker_client.delete_pipeline(PipelineName=unique_name, ClientRequestToken=uuid.uuid4().hex)
    sagemaker_client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                                     PipelineDefinition=definition("again"))
    assert version_ids(sagemaker_client, unique_name) == [1]
    assert sagemaker_client.describe_pipeline(
        PipelineName=unique_name, PipelineVersionId=1)["PipelineDefinition"] == definition("again")


def test_versions_survive_a_restart(tmp_path):
    server = ServerProcess.start(tmp_path / "data")
    try:
        client = server.client("sagemaker")
        client.create_pipeline(PipelineName="kept", RoleArn=ROLE,
                               PipelineDefinition=definition("one"))
        client.update_pipeline(PipelineName="kept", PipelineDefinition=definition("two"))
        server.kill()
        server = ServerProcess.start(tmp_path / "data", port=server.port)
        client = server.client("sagemaker")
        assert version_ids(client, "kept") == [2, 1]
        execution = client.start_pipeline_execution(
            PipelineName="kept", PipelineVersionId=1,
            ClientRequestToken=uuid.uuid4().hex)["PipelineExecutionArn"]
        assert reported(client, execution) == "one"
    finally:
        server.stop()
