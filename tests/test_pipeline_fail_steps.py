"""Fail steps report as SageMaker does, and nothing may depend on them.

What SageMaker answers is taken from the SDK's own integration tests against AWS
(sagemaker-python-sdk tests/integ/sagemaker/workflow/test_fail_steps.py): the execution's
reason is generic, the step keeps the message, and an empty message leaves the step's
FailureReason out. These pipelines run no jobs, so each test takes about a second.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import sdk_session, wait_for_status

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
STEP_FAILURE = "Step failure: One or multiple steps failed."


def sdk_fail_pipeline(name: str, message=None):
    """The SDK's test_fail_steps shape: a condition that is false, a FailStep in ElseSteps."""
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionEquals
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.parameters import ParameterInteger
    from sagemaker.workflow.pipeline import Pipeline

    number = ParameterInteger(name="MyInt", default_value=2)
    fail = FailStep(name="FailStep", error_message=message)
    condition = ConditionStep(name="CondStep", conditions=[ConditionEquals(left=number, right=1)],
                              if_steps=[], else_steps=[fail])
    return Pipeline(name=name, parameters=[number], steps=[condition],
                    sagemaker_session=sdk_session())


def run_to_the_end(client, pipeline) -> tuple[dict, dict[str, dict]]:
    execution = pipeline.start()
    final = wait_for_status(lambda: client.describe_pipeline_execution(
        PipelineExecutionArn=execution.arn), "PipelineExecutionStatus",
        {"Succeeded", "Failed", "Stopped"}, timeout=180)
    steps = {step["StepName"]: step for step in execution.list_steps()}
    return final, steps


@pytest.mark.parametrize("message", ["Failed due to hitting in else branch", None])
def test_the_execution_reason_is_generic_and_the_step_keeps_the_message(
        sagemaker_client, unique_name, message):
    pipeline = sdk_fail_pipeline(unique_name, message)
    pipeline.upsert(role_arn=ROLE)
    final, steps = run_to_the_end(sagemaker_client, pipeline)

    assert final["PipelineExecutionStatus"] == "Failed"
    assert final["FailureReason"] == STEP_FAILURE
    summary = sagemaker_client.list_pipeline_executions(
        PipelineName=unique_name)["PipelineExecutionSummaries"][0]
    assert summary["PipelineExecutionFailureReason"] == STEP_FAILURE
    assert steps["CondStep"]["StepStatus"] == "Succeeded"
    fail = steps["FailStep"]
    assert fail["StepStatus"] == "Failed"
    assert fail["Metadata"]["Fail"]["ErrorMessage"] == (message or "")
    if message:
        assert fail["FailureReason"] == message
    else:
        assert "FailureReason" not in fail  # absent, not ""


def test_a_resolved_message_is_kept_in_the_step(sagemaker_client, unique_name):
    """A Join over a parameter and a condition outcome, resolved when the step runs."""
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionEquals
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.parameters import ParameterInteger
    from sagemaker.workflow.pipeline import Pipeline

    number = ParameterInteger(name="MyInt", default_value=2)
    condition = ConditionStep(name="CondStep", conditions=[ConditionEquals(left=number, right=1)],
                              if_steps=[], else_steps=[])
    fail = FailStep(name="FailStep", error_message=Join(
        on=": ", values=["MyInt is", number, "and the outcome", condition.properties.Outcome]))
    pipeline = Pipeline(name=unique_name, parameters=[number], steps=[condition, fail],
                        sagemaker_session=sdk_session())
    pipeline.upsert(role_arn=ROLE)
    final, steps = run_to_the_end(sagemaker_client, pipeline)
    assert final["FailureReason"] == STEP_FAILURE
    assert steps["FailStep"]["Metadata"]["Fail"]["ErrorMessage"] == \
        "MyInt is: 2: and the outcome: false"


def definition(steps: list[dict]) -> str:
    return json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": steps})


FAIL = {"Name": "FailStep", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}}
CONDITION = {"Name": "CondStep", "Type": "Condition",
             "Arguments": {"Conditions": [], "IfSteps": [], "ElseSteps": []}}


@pytest.mark.parametrize("dependent,how", [
    ({**CONDITION, "DependsOn": ["FailStep"]}, "DependsOn"),
    ({"Name": "CondStep", "Type": "Fail", "Arguments": {"ErrorMessage": {
        "Std:Join": {"On": " ", "Values": ["after", {"Get": "Steps.FailStep.ErrorMessage"}]}}}},
     "Steps.FailStep.ErrorMessage"),
])
def test_create_and_update_refuse_a_step_that_depends_on_a_fail_step(
        sagemaker_client, unique_name, dependent, how):
    refused = definition([dependent, FAIL])
    with pytest.raises(ClientError) as raised:
        sagemaker_client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                                         PipelineDefinition=refused)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "CondStep can not depends on FailStep" in error["Message"]  # SageMaker's wording
    assert how in error["Message"]
    with pytest.raises(ClientError):
        sagemaker_client.describe_pipeline(PipelineName=unique_name)  # nothing was created

    accepted = definition([CONDITION, FAIL])
    sagemaker_client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                                     PipelineDefinition=accepted)
    with pytest.raises(ClientError) as raised:
        sagemaker_client.update_pipeline(PipelineName=unique_name, PipelineDefinition=refused)
    assert "CondStep can not depends on FailStep" in raised.value.response["Error"]["Message"]
    assert sagemaker_client.describe_pipeline(
        PipelineName=unique_name)["PipelineDefinition"] == accepted
    versions = sagemaker_client.list_pipeline_versions(
        PipelineName=unique_name)["PipelineVersionSummaries"]
    assert [version["PipelineVersionId"] for version in versions] == [1]
