"""The pipeline LambdaStep through the SageMaker SDK: outputs feed a condition and a later step."""

from __future__ import annotations

import textwrap

from jobs_helpers import sdk_session
from lambda_helpers import create_function

SCORER = """
    import boto3

    def handler(event, context):
        # Calls back into modelyard, as a real pipeline Lambda would.
        pipelines = boto3.client("sagemaker").list_pipelines()["PipelineSummaries"]
        return {"accuracy": event["correct"] / event["total"], "label": event["model"] + "-v2",
                "approved": event["correct"] > 80, "pipelines": len(pipelines)}
"""

NOTIFIER = """
    def handler(event, context):
        if event.get("explode"):
            raise KeyError("no such channel: " + event["explode"])
        return {"message": "deploy " + event["label"] + " at " + str(event["accuracy"])}
"""


def steps_by_name(execution) -> dict[str, dict]:
    return {step["StepName"]: step for step in execution.list_steps()}


def test_lambda_step_outputs_feed_a_condition_and_a_later_step(server, unique_name, tmp_path):
    import sagemaker
    from sagemaker.lambda_helper import Lambda
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
    from sagemaker.workflow.parameters import ParameterInteger
    from sagemaker.workflow.pipeline import Pipeline

    session = sdk_session()
    script = tmp_path / "scorer.py"
    script.write_text(textwrap.dedent(SCORER))
    # The SDK creates the function itself (CreateFunction with the zipped script).
    scorer = Lambda(function_name=f"{unique_name}-scorer", execution_role_arn=sagemaker.get_execution_role(),
                    script=str(script), handler="scorer.handler", runtime="python3.12",
                    session=session)
    notifier_arn = create_function(server.client("lambda"), f"{unique_name}-notify", NOTIFIER)["FunctionArn"]

    correct = ParameterInteger(name="Correct", default_value=90)
    accuracy = LambdaOutput(output_name="accuracy", output_type=LambdaOutputTypeEnum.Float)
    label = LambdaOutput(output_name="label", output_type=LambdaOutputTypeEnum.String)
    approved = LambdaOutput(output_name="approved", output_type=LambdaOutputTypeEnum.Boolean)
    score = LambdaStep("Score", lambda_func=scorer,
                       inputs={"correct": correct, "total": 100, "model": "tickets"},
                       outputs=[accuracy, label, approved])
    message = LambdaOutput(output_name="message")
    notify = LambdaStep("Notify", lambda_func=Lambda(function_arn=notifier_arn, session=session),
                        inputs={"label": score.properties.Outputs["label"],
                                "accuracy": score.properties.Outputs["accuracy"]},
                        outputs=[message])
    gate = ConditionStep(
        "Gate", conditions=[ConditionGreaterThanOrEqualTo(
            left=score.properties.Outputs["accuracy"], right=0.8)],
        if_steps=[notify], else_steps=[FailStep("TooLow", error_message="accuracy below 0.8")])
    pipeline = Pipeline(unique_name, parameters=[correct], steps=[score, gate],
                        sagemaker_session=session)
    pipeline.upsert(role_arn=sagemaker.get_execution_role())

    execution = pipeline.start()
    execution.wait(delay=1, max_attempts=120)
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    steps = steps_by_name(execution)
    outputs = {item["Name"]: item["Value"]
               for item in steps["Score"]["Metadata"]["Lambda"]["OutputParameters"]}
    assert outputs == {"accuracy": "0.9", "label": "tickets-v2", "approved": "true"}
    assert steps["Score"]["Metadata"]["Lambda"]["Arn"].endswith(f":function:{unique_name}-scorer")
    assert steps["Gate"]["Metadata"]["Condition"]["Outcome"] == "True"
    assert steps["Notify"]["Metadata"]["Lambda"]["OutputParameters"] == [
        {"Name": "message", "Value": "deploy tickets-v2 at 0.9"}]
    assert "TooLow" not in steps

    low = pipeline.start(parameters={"Correct": 50})
    try:
        low.wait(delay=1, max_attempts=120)
    except Exception:  # noqa: BLE001 - the SDK's waiter raises on a Failed execution
        pass
    assert low.describe()["PipelineExecutionStatus"] == "Failed"
    steps = steps_by_name(low)
    assert steps["Gate"]["Metadata"]["Condition"]["Outcome"] == "False"
    assert steps["TooLow"]["StepStatus"] == "Failed" and "Notify" not in steps


def test_a_failing_function_fails_its_step_with_the_error(server, unique_name):
    import sagemaker
    from sagemaker.lambda_helper import Lambda
    from sagemaker.workflow.lambda_step import LambdaStep
    from sagemaker.workflow.pipeline import Pipeline

    session = sdk_session()
    arn = create_function(server.client("lambda"), unique_name, NOTIFIER)["FunctionArn"]
    step = LambdaStep("Notify", lambda_func=Lambda(function_arn=arn, session=session),
                      inputs={"explode": "pager"})
    pipeline = Pipeline(unique_name, steps=[step], sagemaker_session=session)
    pipeline.upsert(role_arn=sagemaker.get_execution_role())
    execution = pipeline.start()
    try:
        execution.wait(delay=1, max_attempts=120)
    except Exception:  # noqa: BLE001 - the SDK's waiter raises on a Failed execution
        pass
    assert execution.describe()["PipelineExecutionStatus"] == "Failed"
    notify = steps_by_name(execution)["Notify"]
    assert notify["StepStatus"] == "Failed"
    assert notify["FailureReason"] == (
        f"Lambda function {arn} failed: KeyError: 'no such channel: pager'")
