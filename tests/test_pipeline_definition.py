"""The pipeline definition interpreter: parsing, validation, parameters, expressions, conditions.

Pure functions, no server. Definitions are the SDK's own output (the ticket pipeline in
tests/data, and two small ones pasted from ``Pipeline(...).definition()``) or hand-written
in the same format.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from modelyard.api.errors import AwsError
from modelyard.pipelines.definition import (
    PipelineDefinition, parse_definition, parse_duration, resolve_parameters,
)
from modelyard.pipelines.expressions import (
    ExpressionError, evaluate_conditions, referenced_parameters, referenced_steps, resolve,
)

TICKET = (Path(__file__).parent / "data" / "ticket_pipeline_definition.json").read_text()

# sagemaker 2.257.6: ConditionStep "Gate" with Or/Not/In/Equals over four parameter types,
# FailSteps in both branches, a Join with Execution.StartDateTime.
SDK_GATE = (
    '{"Version": "2020-12-01", "Metadata": {}, "Parameters": [{"Name": "T", "Type": "Float", '
    '"DefaultValue": 0.5}, {"Name": "N", "Type": "Integer", "DefaultValue": 3}, {"Name": "S", '
    '"Type": "String", "DefaultValue": "a", "EnumValues": ["a", "b"]}, {"Name": "B", "Type": '
    '"Boolean", "DefaultValue": true}], "PipelineExperimentConfig": {"ExperimentName": {"Get": '
    '"Execution.PipelineName"}, "TrialName": {"Get": "Execution.PipelineExecutionId"}}, "Steps": '
    '[{"Name": "Gate", "Type": "Condition", "Arguments": {"Conditions": [{"Type": "Or", '
    '"Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.N"}, '
    '"RightValue": {"Get": "Parameters.T"}}, {"Type": "Not", "Condition": {"Type": "In", '
    '"QueryValue": {"Get": "Parameters.S"}, "Values": ["b"]}}]}, {"Type": "Equals", "LeftValue": '
    '{"Get": "Parameters.B"}, "RightValue": true}], "IfSteps": [{"Name": "Fine", "Type": "Fail", '
    '"Arguments": {"ErrorMessage": "ok"}}], "ElseSteps": [{"Name": "TooLow", "Type": "Fail", '
    '"Arguments": {"ErrorMessage": {"Std:Join": {"On": " ", "Values": ["n", {"Get": '
    '"Parameters.N"}, "at", {"Get": "Execution.StartDateTime"}]}}}}]}}]}'
)
# sagemaker 2.257.6: a CallbackStep with an output, cached 12 hours; a nested FailStep
# that DependsOn it and joins the output.
SDK_CALLBACK = (
    '{"Version": "2020-12-01", "Metadata": {}, "Parameters": [], "PipelineExperimentConfig": '
    '{"ExperimentName": {"Get": "Execution.PipelineName"}, "TrialName": {"Get": '
    '"Execution.PipelineExecutionId"}}, "Steps": [{"Name": "Review", "Type": "Callback", '
    '"Arguments": {"model": "m"}, "CacheConfig": {"Enabled": true, "ExpireAfter": "PT12H"}, '
    '"SqsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q", "OutputParameters": '
    '[{"OutputName": "score", "OutputType": "Float"}]}, {"Name": "Low", "Type": "Condition", '
    '"Arguments": {"Conditions": [{"Type": "LessThan", "LeftValue": {"Get": '
    '"Steps.Review.OutputParameters[\'score\']"}, "RightValue": 0.5}], "IfSteps": [{"Name": '
    '"Reject", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {"On": ": ", "Values": '
    '["score", {"Get": "Steps.Review.OutputParameters[\'score\']"}]}}}, "DependsOn": '
    '["Review"]}], "ElseSteps": []}}]}'
)


# ---------------------------------------------------------------- helpers

class FakeScope:
    """Test data shaped like what the engine gives expressions."""

    def __init__(self, properties: dict | None = None, files: dict | None = None,
                 parameters: dict | None = None, execution: dict | None = None,
                 objects: dict | None = None) -> None:
        self.properties = properties or {}
        self.files = files or {}
        self.parameters = parameters or {}
        self.execution = execution or {}
        self.objects = objects or {}

    def step_properties(self, step_name: str) -> dict[str, Any]:
        if step_name not in self.properties:
            raise ExpressionError(f"Step {step_name} has not succeeded.")
        return self.properties[step_name]

    def property_file(self, step_name: str, property_file_name: str) -> Any:
        return self.files[(step_name, property_file_name)]

    def read_json(self, s3_uri: str) -> Any:
        return self.objects[s3_uri]


def ticket() -> dict:
    return json.loads(TICKET)


def definition(steps: list[dict], parameters: list[dict] | None = None) -> str:
    return json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": parameters or [],
                       "Steps": steps})


def fail_step(name: str, message: Any = "stop", **extra: Any) -> dict:
    return {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": message}, **extra}


def condition_step(name: str, conditions: list, if_steps: list = (), else_steps: list = (),
                   **extra: Any) -> dict:
    arguments = {"Conditions": conditions, "IfSteps": list(if_steps),
                 "ElseSteps": list(else_steps)}
    return {"Name": name, "Type": "Condition", "Arguments": arguments, **extra}


def get(path: str) -> dict:
    return {"Get": path}


def json_get(path: str, step: str = "Evaluate", name: str = "Evaluation") -> dict:
    return {"Std:JsonGet": {"PropertyFile": get(f"Steps.{step}.PropertyFiles.{name}"),
                            "Path": path}}


def refused(text: str, *fragments: str) -> str:
    with pytest.raises(AwsError) as caught:
        parse_definition(text)
    assert caught.value.code == "ValidationException"
    for fragment in fragments:
        assert fragment in caught.value.message, caught.value.message
    return caught.value.message


def with_ticket(mutate) -> str:
    document = ticket()
    mutate(document)
    return json.dumps(document)


def check_operand(document: dict) -> dict:
    """The Check step's JsonGet operand in the ticket definition."""
    return document["Steps"][3]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]


# ---------------------------------------------------------------- the ticket pipeline

def test_ticket_pipeline_steps_and_graph():
    parsed = parse_definition(TICKET)
    assert parsed.version == "2020-12-01"
    assert parsed.top_level == ("Preprocess", "Train", "Evaluate", "Check")
    assert list(parsed.steps) == ["Preprocess", "Train", "Evaluate", "Check",
                                  "Register-RegisterModel", "Fail"]
    steps = parsed.steps
    assert {name: spec.type for name, spec in steps.items()} == {
        "Preprocess": "Processing", "Train": "Training", "Evaluate": "Processing",
        "Check": "Condition", "Register-RegisterModel": "RegisterModel", "Fail": "Fail"}
    assert steps["Preprocess"].upstream == frozenset()
    assert steps["Train"].upstream == {"Preprocess"}
    assert steps["Evaluate"].upstream == {"Train"}
    assert steps["Check"].upstream == {"Evaluate"}
    assert steps["Register-RegisterModel"].upstream == {"Check", "Train"}
    assert steps["Fail"].upstream == {"Check"}
    assert parsed.ancestors("Register-RegisterModel") == {
        "Preprocess", "Train", "Evaluate", "Check"}
    assert steps["Register-RegisterModel"].condition_branch == ("Check", "if")
    assert steps["Fail"].condition_branch == ("Check", "else")
    assert steps["Train"].condition_branch is None
    assert steps["Check"].if_steps == ("Register-RegisterModel",)
    assert steps["Check"].else_steps == ("Fail",)
    # The Condition's own arguments are its Conditions; nested steps resolve on their own.
    assert list(steps["Check"].arguments) == ["Conditions"]
    assert "IfSteps" in steps["Check"].raw["Arguments"]
    assert parsed.order.index("Check") < parsed.order.index("Register-RegisterModel")
    assert steps["Train"].depends_on == ()


def test_ticket_pipeline_cache_retry_and_property_files():
    steps = parse_definition(TICKET).steps
    assert steps["Preprocess"].cache.enabled
    assert steps["Preprocess"].cache.expire_after == timedelta(days=30)
    assert steps["Evaluate"].cache is None
    throttling, internal = steps["Preprocess"].retry_policies
    assert throttling.exception_types == ("Step.THROTTLING",)
    assert throttling.interval_seconds == 1 and throttling.backoff_rate == 2.0
    assert throttling.max_attempts == 3
    assert internal.exception_types == ("SageMaker.JOB_INTERNAL_ERROR",)
    assert internal.max_attempts == 2 and internal.expire_after_mins is None
    (evaluation,) = steps["Evaluate"].property_files
    assert (evaluation.name, evaluation.output_name, evaluation.file_path) == (
        "Evaluation", "evaluation", "evaluation.json")


def test_ticket_pipeline_parameters():
    parameters = parse_definition(TICKET).parameters
    assert parameters["AccuracyThreshold"].type == "Float"
    assert parameters["AccuracyThreshold"].default == 0.8
    assert parameters["Epochs"].default == 5 and parameters["ApprovalStatus"].enum_values is None


def test_referenced_steps_and_parameters():
    register = parse_definition(TICKET).steps["Register-RegisterModel"].raw
    assert referenced_steps(register) == {"Train"}
    assert referenced_parameters(register) == {"ApprovalStatus"}
    check = ticket()["Steps"][3]["Arguments"]["Conditions"]
    assert referenced_steps(check) == {"Evaluate"}
    assert referenced_parameters(check) == {"AccuracyThreshold"}


def test_sdk_condition_and_callback_definitions():
    gate = parse_definition(SDK_GATE)
    assert gate.steps["TooLow"].condition_branch == ("Gate", "else")
    assert gate.parameters["B"].default is True
    assert gate.parameters["S"].enum_values == ["a", "b"]
    callback = parse_definition(SDK_CALLBACK)
    assert callback.steps["Review"].cache.expire_after == timedelta(hours=12)
    assert callback.steps["Reject"].upstream == {"Low", "Review"}
    assert callback.steps["Reject"].depends_on == ("Review",)
    assert callback.order == ("Review", "Low", "Reject")


def test_nested_conditions():
    inner = condition_step("Inner", [], [fail_step("Deep")], [])
    parsed = parse_definition(definition([condition_step("Outer", [], [inner]),
                                          fail_step("After", get("Steps.Inner.Outcome"))]))
    assert parsed.steps["Deep"].condition_branch == ("Inner", "if")
    assert parsed.steps["Inner"].condition_branch == ("Outer", "if")
    assert parsed.ancestors("Deep") == {"Inner", "Outer"}
    assert parsed.steps["After"].upstream == {"Inner"}
    assert parsed.top_level == ("Outer", "After")


# ---------------------------------------------------------------- refusals

def test_refuses_malformed_documents():
    refused("{not json", "not valid JSON")
    refused(json.dumps({"Version": "2021-01-01", "Steps": []}),
            "Version", "2021-01-01", "2020-12-01")
    refused(json.dumps({"Version": "2020-12-01"}), "Steps")
    refused(definition([]), "Steps")
    refused(definition([{"Name": "bad name!", "Type": "Fail"}]), "bad name!")


def test_refuses_duplicate_names_including_nested():
    def add_twin(document):
        document["Steps"][3]["Arguments"]["ElseSteps"].append(fail_step("Train"))
    refused(with_ticket(add_twin), "Train", "more than one step")


@pytest.mark.parametrize("kind, fragment", [
    ("Lambda", "FunctionArn null is not a Lambda function ARN"),
    ("EMR", "Step Odd is a EMR step; modelyard has no Amazon EMR"),
    ("AutoML", "Autopilot"),
    ("Notebook", "notebook"),
    ("BedrockModelImport", "Bedrock"),
    ("Teleport", "not a step type modelyard knows"),
])
def test_refuses_step_types(kind, fragment):
    refused(definition([{"Name": "Odd", "Type": kind, "Arguments": {}}]), "Odd", fragment)


def train_input(path: str) -> str:
    """The ticket definition with Train's data channel reading ``{"Get": path}``."""
    def retarget(document):
        channel = document["Steps"][1]["Arguments"]["InputDataConfig"][0]
        channel["DataSource"]["S3DataSource"]["S3Uri"] = get(path)
    return with_ticket(retarget)


def test_refuses_references_to_missing_things():
    refused(train_input("Steps.Nope.ProcessingOutputConfig"), "Step Train", "Steps.Nope", "Nope")
    refused(train_input("Parameters.Missing"), "Step Train", "Missing",
            "declared: AccuracyThreshold, ApprovalStatus, Epochs")
    refused(train_input("Execution.Tomorrow"), "Step Train", "Tomorrow", "PipelineExecutionId")
    refused(train_input("Steps.Preprocess.ProcessingOutputConfig.Outputz"),
            "Step Train", "Outputz")
    refused(train_input("Steps.Preprocess.PropertyFiles.X"), "Step Train", "Std:JsonGet")
    refused(train_input("Bogus.X"), "Step Train", "Bogus.X")
    parse_definition(train_input("Execution.ProcessingJobName"))  # a real execution variable


def test_refuses_property_path_typos_against_the_describe_shape():
    def typo(document):
        first_input = document["Steps"][2]["Arguments"]["ProcessingInputs"][0]
        first_input["S3Input"]["S3Uri"] = get("Steps.Train.ModelArtifact.S3ModelArtifacts")
    refused(with_ticket(typo), "Step Evaluate", "ModelArtifact", "Training")
    good = ["Steps.Train.FinalMetricDataList['validation:accuracy'].Value",
            "Steps.Train.HyperParameters['epochs']",
            "Steps.Preprocess.ProcessingInputs['code'].S3Input.S3Uri",
            "Steps.Register-RegisterModel.ModelPackageArn",
            "Steps.Check.Outcome"]
    document = ticket()
    document["Steps"] += [fail_step(f"Probe{index}", get(path)) for index, path in enumerate(good)]
    parse_definition(json.dumps(document))  # no refusal
    document = ticket()
    document["Steps"].append(fail_step("Probe", get("Steps.Check.Verdict")))
    refused(json.dumps(document), "Step Probe", "Outcome")


def test_accepts_property_paths_the_sdk_emits_for_each_step_type():
    # As in Pipeline(...).definition() for TuningStep, ModelStep, TransformStep, RegisterModel,
    # QualityCheckStep and CallbackStep properties.
    steps = [{"Name": name, "Type": kind, "Arguments": {}} for name, kind in [
        ("Tune", "Tuning"), ("Make-CreateModel", "Model"), ("Score", "Transform"),
        ("Reg-RegisterModel", "RegisterModel"), ("Baseline", "QualityCheck")]]
    paths = ["Steps.Tune.TrainingJobSummaries[0].TrainingJobName",
             "Steps.Tune.BestTrainingJob.TrainingJobName",
             "Steps.Make-CreateModel.ModelName",
             "Steps.Score.TransformOutput.S3OutputPath",
             "Steps.Reg-RegisterModel.ModelPackageArn",
             "Steps.Baseline.CalculatedBaselineStatistics"]
    steps += [fail_step(f"Probe{index}", get(path)) for index, path in enumerate(paths)]
    parsed = parse_definition(definition(steps))
    assert parsed.steps["Probe0"].upstream == {"Tune"}
    steps.append(fail_step("Typo", get("Steps.Tune.BestTrainingJob.JobName")))
    refused(definition(steps), "Step Typo", "BestTrainingJob", "'JobName'")


def test_refuses_missing_property_file():
    def rename(document):
        check_operand(document)["PropertyFile"] = get("Steps.Evaluate.PropertyFiles.Metrics")
    refused(with_ticket(rename), "Step Check", "no property file Metrics", "Evaluation")

    def wrong_step(document):
        check_operand(document)["PropertyFile"] = get("Steps.Train.PropertyFiles.Evaluation")
    refused(with_ticket(wrong_step), "Step Check", "step Train has no property file Evaluation")

    def wrong_output(document):
        document["Steps"][2]["PropertyFiles"][0]["OutputName"] = "metrics"
    refused(with_ticket(wrong_output), "Step Evaluate", "output metrics", "evaluation")


def test_refuses_cycles_and_unknown_depends_on():
    message = refused(definition([fail_step("A", get("Steps.B.Outcome")),
                                  condition_step("B", [], DependsOn=["A"])]),
                      "cycle", "A", "B")
    assert "A -> B -> A" in message or "B -> A -> B" in message
    refused(definition([fail_step("Loop", DependsOn=["Loop"])]), "Loop -> Loop")
    refused(definition([fail_step("A", DependsOn=["Ghost"])]), "Step A", "DependsOn", "Ghost")
    # A condition that tests a step nested in its own branch waits for itself.
    own_branch = {"Type": "Equals", "LeftValue": get("Steps.D.Outcome"), "RightValue": True}
    refused(definition([condition_step("C", [own_branch], [condition_step("D", [])])]),
            "cycle", "C", "D")


def test_refuses_steps_that_depend_on_a_fail_step():
    refused(definition([fail_step("F"), condition_step("C", [], DependsOn=["F"])]),
            "C can not depends on F", "DependsOn")
    # Nested in a branch, and through a Get rather than DependsOn.
    reads = fail_step("Late", {"Std:Join": {"On": " ", "Values": [get("Steps.F.ErrorMessage")]}})
    refused(definition([fail_step("F"), condition_step("C", [], [reads])]),
            "Late can not depends on F", "Steps.F.ErrorMessage")
    # A Fail step may itself wait for others.
    parse_definition(definition([condition_step("C", []), fail_step("F", DependsOn=["C"])]))


def test_refuses_a_step_waiting_on_both_branches():
    steps = [condition_step("C", [], [condition_step("Yes", [])], [condition_step("No", [])]),
             fail_step("Both", DependsOn=["Yes", "No"])]
    refused(definition(steps), "Step Both", "never run", "IfSteps", "ElseSteps", "condition C")
    across = [condition_step("C", [], [condition_step("Yes", [])],
                             [fail_step("Other", get("Steps.Yes.Outcome"))])]
    refused(definition(across), "Step Other", "never run")


@pytest.mark.parametrize("parameter, fragment", [
    ({"Name": "Epochs", "Type": "Integer", "DefaultValue": "abc"}, '"abc" is not a valid Integer'),
    ({"Name": "Epochs", "Type": "Integer", "DefaultValue": 2.5}, "not a valid Integer"),
    ({"Name": "Rate", "Type": "Float", "DefaultValue": True}, "not a valid Float"),
    ({"Name": "Flag", "Type": "Boolean", "DefaultValue": "yes"}, "not a valid Boolean"),
    ({"Name": "Label", "Type": "String", "DefaultValue": 3}, "not a valid String"),
    ({"Name": "Size", "Type": "Long"}, 'Type "Long"'),
    ({"Name": "Mode", "Type": "String", "DefaultValue": "c", "EnumValues": ["a", "b"]},
     "EnumValues"),
    ({"Name": "has space", "Type": "String"}, "Name"),
])
def test_refuses_bad_parameters(parameter, fragment):
    message = refused(definition([fail_step("F")], [parameter]), fragment)
    assert parameter["Name"] in message


def test_refuses_duplicate_parameter():
    refused(definition([fail_step("F")], [{"Name": "A", "Type": "String"}] * 2),
            "Parameter A", "more than once")


THROTTLING = ["Step.THROTTLING"]


@pytest.mark.parametrize("setting, fragments", [
    ({"CacheConfig": {"Enabled": True, "ExpireAfter": "30 days"}}, ("30 days", "ISO-8601")),
    ({"RetryPolicies": [{"ExceptionType": ["Step.OOPS"], "MaxAttempts": 2}]},
     ("ExceptionType", "Step.THROTTLING")),
    ({"RetryPolicies": [{"ExceptionType": THROTTLING, "MaxAttempts": 50}]}, ("MaxAttempts",)),
    ({"RetryPolicies": [{"ExceptionType": THROTTLING}]}, ("MaxAttempts or ExpireAfterMin",)),
    ({"RetryPolicies": [{"ExceptionType": THROTTLING, "ExpireAfterMin": 10, "BackoffRate": -1}]},
     ("BackoffRate",)),
    ({"DependsOn": "Train"}, ("DependsOn",)),
    ({"PropertyFiles": [{"PropertyFileName": "x"}]}, ("PropertyFileName",)),
])
def test_refuses_bad_step_settings(setting, fragments):
    refused(with_ticket(lambda document: document["Steps"][0].update(setting)),
            "Step Preprocess", *fragments)


def test_refuses_property_files_outside_processing_steps():
    files = [{"PropertyFileName": "x", "OutputName": "o", "FilePath": "f.json"}]
    refused(with_ticket(lambda document: document["Steps"][1].update(PropertyFiles=files)),
            "Step Train", "only Processing steps")


def test_refuses_bad_conditions_and_functions():
    bigger = {"Type": "Bigger", "LeftValue": 1, "RightValue": 2}
    refused(definition([condition_step("C", [bigger])]), "Step C", "Bigger", "GreaterThan")
    half = {"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": 1}}
    refused(definition([condition_step("C", [half])]), "Step C", "RightValue")
    refused(definition([fail_step("F", {"Std:Concat": ["a", "b"]})]), "Step F", "Std:Concat")
    refused(definition([fail_step("F", {"Std:Join": {"On": "/"}})]), "Step F", "Values")
    bad_path = {"Std:JsonGet": {"Path": "a[", "PropertyFile": get("Steps.X.PropertyFiles.Y")}}
    refused(definition([fail_step("F", bad_path)]), "Step F", "a[")
    not_a_file = {"Std:JsonGet": {"Path": "a", "PropertyFile": get("Parameters.P")}}
    refused(definition([fail_step("F", not_a_file)]), "Step F", "Steps.<step>.PropertyFiles.<name>")


def test_refuses_undeclared_callback_output_and_bad_experiment_config():
    grade = SDK_CALLBACK.replace("OutputParameters['score']\"}]}}}",
                                 "OutputParameters['grade']\"}]}}}")
    refused(grade, "Step Reject", "grade", "score")
    document = json.loads(SDK_GATE)
    document["PipelineExperimentConfig"]["TrialName"] = get("Steps.Gate.Outcome")
    refused(json.dumps(document), "PipelineExperimentConfig", "Steps.Gate.Outcome")


# ---------------------------------------------------------------- parameters

def test_resolve_parameters_converts_and_fills_defaults():
    parsed = parse_definition(SDK_GATE)
    assert resolve_parameters(parsed, None) == {"T": 0.5, "N": 3, "S": "a", "B": True}
    given = [{"Name": "T", "Value": "0.85"}, {"Name": "N", "Value": "-7"},
             {"Name": "S", "Value": "b"}, {"Name": "B", "Value": "False"}]
    values = resolve_parameters(parsed, given)
    assert values == {"T": 0.85, "N": -7, "S": "b", "B": False}
    assert isinstance(values["N"], int)
    assert isinstance(resolve_parameters(parsed, [{"Name": "T", "Value": "1"}])["T"], float)


def resolve_refused(parsed: PipelineDefinition, given: list[dict], *fragments: str) -> None:
    with pytest.raises(AwsError) as caught:
        resolve_parameters(parsed, given)
    assert caught.value.code == "ValidationException"
    for fragment in fragments:
        assert fragment in caught.value.message, caught.value.message


def test_resolve_parameters_refusals():
    parsed = parse_definition(SDK_GATE)
    resolve_refused(parsed, [{"Name": "Foo", "Value": "1"}],
                    "Parameter Foo is not defined in the pipeline; defined: T, N, S, B")
    resolve_refused(parsed, [{"Name": "N", "Value": "abc"}], "N", '"abc"', "Integer")
    resolve_refused(parsed, [{"Name": "N", "Value": "2.5"}], "N", "Integer")
    resolve_refused(parsed, [{"Name": "T", "Value": "fast"}], "T", "Float")
    resolve_refused(parsed, [{"Name": "T", "Value": "nan"}], "T", "Float")
    resolve_refused(parsed, [{"Name": "B", "Value": "yes"}], "B", "Boolean")
    resolve_refused(parsed, [{"Name": "S", "Value": "c"}], "S", "EnumValues", '"a", "b"')
    twice = [{"Name": "N", "Value": "1"}, {"Name": "N", "Value": "2"}]
    resolve_refused(parsed, twice, "N", "more than once")
    bucket = {"Name": "Bucket", "Type": "String"}
    required = parse_definition(definition([fail_step("F")], [bucket]))
    resolve_refused(required, [], "Parameter Bucket has no default value")
    assert resolve_parameters(required, [{"Name": "Bucket", "Value": "b"}]) == {"Bucket": "b"}


@pytest.mark.parametrize("text, expected", [
    ("P30D", timedelta(days=30)),
    ("p30d", timedelta(days=30)),
    ("PT1H", timedelta(hours=1)),
    ("T12H", timedelta(hours=12)),
    ("P4DT12H", timedelta(days=4, hours=12)),
    ("P2W", timedelta(days=14)),
    ("PT0.5S", timedelta(seconds=0.5)),
    ("P1Y2M3DT4H5M6S", timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1H", "thirty days", "P-1D"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# ---------------------------------------------------------------- resolving expressions

START = datetime(2024, 5, 13, 10, 20, 30, 123456, tzinfo=timezone.utc)
EXECUTION_ARN = ("arn:aws:sagemaker:us-east-1:123456789012:pipeline/ticketpipeline/"
                 "execution/abc123")
EXECUTION = {"PipelineExecutionId": "abc123", "PipelineName": "TicketPipeline",
             "StartDateTime": START, "PipelineExecutionArn": EXECUTION_ARN}
TRAIN_DATA = "s3://bkt/TicketPipeline/abc123/Preprocess/output/train"
MODEL = "s3://bkt/models/pipelines-abc123-Train/output/model.tar.gz"
PREPROCESS = {
    "ProcessingJobName": "pipelines-abc123-Preprocess",
    "ProcessingInputs": [{"InputName": "input-1", "S3Input": {"S3Uri": "s3://bkt/raw"}},
                         {"InputName": "code", "S3Input": {"S3Uri": "s3://bkt/code/prep.py"}}],
    "ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "train", "S3Output": {"S3Uri": TRAIN_DATA}}]},
}
TRAIN = {
    "TrainingJobName": "pipelines-abc123-Train",
    "ModelArtifacts": {"S3ModelArtifacts": MODEL},
    "HyperParameters": {"mode": "supervised", "epochs": "5"},
    "FinalMetricDataList": [
        {"MetricName": "validation:accuracy", "Value": 0.87, "Timestamp": START},
        {"MetricName": "train:accuracy", "Value": 0.95}],
    "CreationTime": START,
}
TUNING = {"BestTrainingJob": {"TrainingJobName": "tuning-007"},
          "TrainingJobSummaries": [{"TrainingJobName": "tuning-007"},
                                   {"TrainingJobName": "tuning-003"}]}
EVALUATION = {"metrics": {"accuracy": 0.87, "per_class": [{"label": "network", "f1": 0.9}]}}


def ticket_scope(**overrides: Any) -> FakeScope:
    return FakeScope(
        properties={"Preprocess": PREPROCESS, "Train": TRAIN, "Tune": TUNING,
                    "Check": {"Outcome": True}},
        files={("Evaluate", "Evaluation"): EVALUATION},
        parameters={"AccuracyThreshold": 0.8, "ApprovalStatus": "PendingManualApproval",
                    "Epochs": 5},
        execution=EXECUTION, **overrides)


def test_resolve_ticket_train_arguments():
    spec = parse_definition(TICKET).steps["Train"]
    arguments = resolve(spec.arguments, ticket_scope())
    channel = arguments["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert channel["S3Uri"] == TRAIN_DATA
    assert arguments["HyperParameters"] == {"mode": "supervised", "epochs": "5"}
    assert arguments["ResourceConfig"]["InstanceCount"] == 1
    assert spec.arguments["HyperParameters"]["epochs"] != "5"  # the spec itself is untouched


def test_resolve_ticket_other_steps():
    steps, scope = parse_definition(TICKET).steps, ticket_scope()
    preprocess = resolve(steps["Preprocess"].arguments, scope)
    assert preprocess["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == TRAIN_DATA
    evaluate = resolve(steps["Evaluate"].arguments, scope)
    assert evaluate["ProcessingInputs"][0]["S3Input"]["S3Uri"] == MODEL
    register = resolve(steps["Register-RegisterModel"].arguments, scope)
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"] == "s3://bkt/abc123/eval/evaluation.json"
    assert register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == MODEL
    assert resolve(steps["Fail"].arguments, scope) == {"ErrorMessage": "accuracy below 0.8"}
    experiment = resolve(json.loads(TICKET)["PipelineExperimentConfig"], scope)
    assert experiment == {"ExperimentName": "TicketPipeline", "TrialName": "abc123"}


@pytest.mark.parametrize("path, expected", [
    ("Steps.Train.FinalMetricDataList['validation:accuracy'].Value", 0.87),
    ("Steps.Train.FinalMetricDataList[1].MetricName", "train:accuracy"),
    ("Steps.Train.HyperParameters['epochs']", "5"),
    ("Steps.Train.ModelArtifacts.S3ModelArtifacts", MODEL),
    ("Steps.Train.CreationTime", "2024-05-13T10:20:30.123Z"),
    ("Steps.Preprocess.ProcessingInputs['code'].S3Input.S3Uri", "s3://bkt/code/prep.py"),
    ("Steps.Tune.TrainingJobSummaries[0].TrainingJobName", "tuning-007"),
    ("Steps.Tune.BestTrainingJob.TrainingJobName", "tuning-007"),
    ("Steps.Check.Outcome", True),
    ("Execution.StartDateTime", "2024-05-13T10:20:30.123Z"),
    ("Execution.PipelineExecutionArn", EXECUTION_ARN),
    ("Parameters.Epochs", 5),
])
def test_get_paths(path, expected):
    assert resolve(get(path), ticket_scope()) == expected


@pytest.mark.parametrize("path, fragments", [
    ("Steps.Preprocess.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri",
     ("Steps.Preprocess.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri",
      "has no 'validation' (it has: train)")),
    ("Steps.Train.FinalMetricDataList[5].Value", ("FinalMetricDataList has no item [5]",)),
    ("Steps.Train.ModelArtifacts.S3ModelArtifacts.Key", ("S3ModelArtifacts has no 'Key'",)),
    ("Steps.Train.OutputDataConfig.S3OutputPath", ("OutputDataConfig", "ModelArtifacts")),
    ("Steps.Evaluate.ProcessingOutputConfig", ("Evaluate", "not succeeded")),
    ("Parameters.Nope", ("Nope",)),
    ("Execution.TrainingJobName", ("TrainingJobName",)),
    ("Steps.Evaluate.PropertyFiles.Evaluation", ("Std:JsonGet",)),
    ("PipelineExperimentConfig.TrialName", ("TrialName",)),
])
def test_get_failures_name_the_expression(path, fragments):
    with pytest.raises(ExpressionError) as caught:
        resolve({"Nested": [get(path)]}, ticket_scope())
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_experiment_config_values_come_from_the_scope():
    scope = ticket_scope()
    scope.experiment_config = {"ExperimentName": "tickets", "TrialName": "abc123"}
    joined = {"Std:Join": {"On": "/", "Values": [get("PipelineExperimentConfig.TrialName"), "x"]}}
    assert resolve(joined, scope) == "abc123/x"


def test_join_stringifies_like_sagemaker():
    scope = ticket_scope()
    values = ["x", 5, 0.8, 5.0, True, False, get("Execution.StartDateTime"),
              {"Std:Join": {"On": "+", "Values": [1, 2]}}]
    assert resolve({"Std:Join": {"On": "|", "Values": values}}, scope) == \
        "x|5|0.8|5.0|true|false|2024-05-13T10:20:30.123Z|1+2"
    assert resolve({"Std:Join": {"Values": ["a", "b"]}}, scope) == "ab"  # On defaults to ""
    with pytest.raises(ExpressionError, match="null"):
        resolve({"Std:Join": {"On": "/", "Values": ["a", None]}}, scope)
    naive = FakeScope(execution={"StartDateTime": datetime(2024, 1, 2, 3, 4, 5)})
    assert resolve(get("Execution.StartDateTime"), naive) == "2024-01-02T03:04:05.000Z"


def test_json_get():
    scope = ticket_scope()
    assert resolve(json_get("metrics.accuracy"), scope) == 0.87
    assert resolve(json_get("$.metrics.per_class[0].label"), scope) == "network"
    assert resolve(json_get("metrics['per_class'][0]['f1']"), scope) == 0.9
    assert resolve(json_get("metrics"), scope) == EVALUATION["metrics"]
    with pytest.raises(ExpressionError) as caught:
        resolve(json_get("metrics.accuracy.value"), scope)
    assert "metrics.accuracy.value" in str(caught.value)
    assert "property file Evaluation of step Evaluate" in str(caught.value)
    with pytest.raises(ExpressionError, match="per_class"):
        resolve(json_get("metrics.per_class['network']"), scope)  # JSON lists index by number


def test_json_get_s3_uri_form():
    # What the SDK emits for a @step function's result (DelayedReturn).
    uri = {"Std:Join": {"On": "/", "Values": [get("Steps.Train.ModelArtifacts.S3ModelArtifacts"),
                                                "results.json"]}}
    expression = {"Std:JsonGet": {"S3Uri": uri, "Path": "Return[1]"}}
    scope = ticket_scope(objects={MODEL + "/results.json": {"Return": [10, 20]}})
    assert resolve(expression, scope) == 20
    assert referenced_steps(expression) == {"Train"}

    class NoS3(FakeScope):
        read_json = None
    with pytest.raises(ExpressionError, match="cannot read JSON from S3"):
        resolve(expression, NoS3(properties={"Train": TRAIN}))


# ---------------------------------------------------------------- conditions

def compare(kind: str, left: Any, right: Any) -> dict:
    return {"Type": kind, "LeftValue": left, "RightValue": right}


@pytest.mark.parametrize("condition, expected", [
    (compare("Equals", 1, 1.0), True),
    (compare("Equals", "a", "a"), True),
    (compare("Equals", True, False), False),
    (compare("GreaterThan", 0.87, 0.8), True),
    (compare("GreaterThan", 1, 1.0), False),
    (compare("GreaterThanOrEqualTo", 1, 1.0), True),
    (compare("LessThan", 3, 3.5), True),
    (compare("LessThanOrEqualTo", 4, 3.5), False),
    (compare("LessThan", "apple", "banana"), True),
    ({"Type": "In", "QueryValue": 2, "Values": [1.0, 2.0]}, True),
    ({"Type": "In", "QueryValue": "c", "Values": ["a", "b"]}, False),
    ({"Type": "In", "QueryValue": "1", "Values": [1]}, False),
    ({"Type": "Not", "Condition": compare("Equals", 1, 2)}, True),
    ({"Type": "Or", "Conditions": [compare("Equals", 1, 2), compare("LessThan", 1, 2)]}, True),
    ({"Type": "Or", "Conditions": []}, False),
    ({"Type": "Not", "Condition": {"Type": "Or", "Conditions": [
        {"Type": "Not", "Condition": compare("Equals", "a", "a")},
        compare("GreaterThan", 1, 2)]}}, True),
])
def test_condition_types(condition, expected):
    assert evaluate_conditions([condition], FakeScope()) is expected


def test_conditions_are_a_conjunction_over_resolved_operands():
    scope = ticket_scope()
    high = compare("GreaterThanOrEqualTo", json_get("metrics.accuracy"),
                   get("Parameters.AccuracyThreshold"))
    assert evaluate_conditions([high], scope) is True
    six_epochs = compare("Equals", get("Parameters.Epochs"), 6)
    assert evaluate_conditions([high, six_epochs], scope) is False
    assert evaluate_conditions([], scope) is True
    check = parse_definition(TICKET).steps["Check"].arguments["Conditions"]
    assert evaluate_conditions(check, scope) is True
    scope.parameters["AccuracyThreshold"] = 0.9
    assert evaluate_conditions(check, scope) is False


def test_sdk_gate_conditions():
    conditions = parse_definition(SDK_GATE).steps["Gate"].arguments["Conditions"]
    scope = FakeScope(parameters={"T": 0.5, "N": 3, "S": "a", "B": True})
    assert evaluate_conditions(conditions, scope) is True
    scope.parameters.update(N=0, S="b")  # 0 < 0.5, and S is in ["b"]
    assert evaluate_conditions(conditions, scope) is False


@pytest.mark.parametrize("condition, fragment", [
    (compare("GreaterThan", "0.9", 0.8), "string"),
    (compare("Equals", "1", 1), "number"),
    (compare("LessThan", True, False), "numbers or strings"),
    ({"Type": "Bigger", "LeftValue": 1, "RightValue": 2}, "Bigger"),
])
def test_condition_errors(condition, fragment):
    with pytest.raises(ExpressionError, match=fragment):
        evaluate_conditions([condition], FakeScope())


def test_parse_does_not_mutate_its_input():
    document = ticket()
    before = copy.deepcopy(document)
    parse_definition(json.dumps(document))
    assert document == before
