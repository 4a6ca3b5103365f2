"""QualityCheckStep in a pipeline, through the SageMaker SDK: baselines, drift, the registry.

One pipeline, run three times as a team does (pipelines-quality-clarify-baseline-lifecycle):
the first run calculates the first baseline (skip_check, register_new_baseline) and
registers it with the approved model version; a drifted dataset then fails the check
against that registered baseline with the violation in the step's FailureReason; a clean
dataset checked against a supplied baseline passes and carries the baseline over.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import time

import pytest

from jobs_helpers import SKLEARN_IMAGE, sdk_session

ROWS = 1500
TIMEOUT = 300


def dataset(seed: int, amount_mean: float) -> str:
    """CSV with a header: a numeric feature, an integer one and a categorical one."""
    rng = random.Random(seed)
    lines = ["amount,items,channel"]
    for _ in range(ROWS):
        channel = rng.choices(["web", "phone", "store"], weights=[6, 3, 1])[0]
        lines.append(f"{rng.gauss(amount_mean, 10):.4f},{rng.randint(1, 9)},{channel}")
    return "\n".join(lines) + "\n"


def model_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"not a real model: the registry only records where it is"
        info = tarfile.TarInfo("model.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_pipeline(name: str, bucket: str, group: str):
    import sagemaker
    from sagemaker import Model
    from sagemaker.drift_check_baselines import DriftCheckBaselines
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.model_monitor import DatasetFormat
    from sagemaker.workflow.check_job_config import CheckJobConfig
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.parameters import ParameterBoolean, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
    from sagemaker.workflow.steps import CacheConfig
    from sagemaker.workflow.model_step import ModelStep

    session = PipelineSession(default_bucket=bucket)
    role = sagemaker.get_execution_role()
    data = ParameterString("DatasetUri")
    skip_check = ParameterBoolean("SkipCheck", default_value=False)
    register_new = ParameterBoolean("RegisterNewBaseline", default_value=False)
    statistics = ParameterString("SuppliedBaselineStatistics", default_value="")
    constraints = ParameterString("SuppliedBaselineConstraints", default_value="")
    fail_on_violation = ParameterBoolean("FailOnViolation", default_value=True)
    check = QualityCheckStep(
        "DataQualityCheck", cache_config=CacheConfig(enable_caching=True, expire_after="P1D"),
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=data, dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=Join(on="/", values=[f"s3://{bucket}/{name}/checks",
                                               ExecutionVariables.PIPELINE_EXECUTION_ID])),
        check_job_config=CheckJobConfig(role=role, instance_count=1,
                                        instance_type="ml.m5.xlarge", sagemaker_session=session),
        skip_check=skip_check, register_new_baseline=register_new,
        fail_on_violation=fail_on_violation,
        supplied_baseline_statistics=statistics, supplied_baseline_constraints=constraints,
        model_package_group_name=group)

    def source(uri) -> MetricsSource:  # noqa: ANN001 - a pipeline property
        return MetricsSource(s3_uri=uri, content_type="application/json")

    model = Model(image_uri=SKLEARN_IMAGE, model_data=f"s3://{bucket}/{name}/model.tar.gz",
                  role=role, sagemaker_session=session)
    register = ModelStep("Register", depends_on=[check], step_args=model.register(
        content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=group, approval_status="Approved",
        model_metrics=ModelMetrics(
            model_data_statistics=source(check.properties.CalculatedBaselineStatistics),
            model_data_constraints=source(check.properties.CalculatedBaselineConstraints)),
        drift_check_baselines=DriftCheckBaselines(
            model_data_statistics=source(check.properties.BaselineUsedForDriftCheckStatistics),
            model_data_constraints=source(check.properties.BaselineUsedForDriftCheckConstraints))))
    return Pipeline(name, parameters=[data, skip_check, register_new, statistics, constraints,
                                      fail_on_violation],
                    steps=[check, register], sagemaker_session=session)


def wait(client, arn: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while True:
        description = client.describe_pipeline_execution(PipelineExecutionArn=arn)
        if description["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            return description
        assert time.monotonic() < deadline, f"execution still running after {TIMEOUT}s"
        time.sleep(0.5)


def steps_of(client, arn: str) -> dict[str, dict]:
    listed = client.list_pipeline_execution_steps(PipelineExecutionArn=arn)
    return {step["StepName"]: step for step in listed["PipelineExecutionSteps"]}


def read_json(s3, uri: str) -> dict:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture()
def quality_pipeline(server, unique_name):
    import sagemaker

    bucket = sdk_session().default_bucket()
    s3 = server.client("s3")
    for file, text in (("baseline.csv", dataset(1, 100.0)), ("drifted.csv", dataset(2, 130.0)),
                       ("clean.csv", dataset(3, 100.0))):
        s3.put_object(Bucket=bucket, Key=f"{unique_name}/data/{file}", Body=text.encode())
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/model.tar.gz", Body=model_tarball())
    pipeline = build_pipeline(unique_name, bucket, group=unique_name)
    pipeline.upsert(role_arn=sagemaker.get_execution_role())
    return pipeline, f"s3://{bucket}/{unique_name}/data"


def test_baseline_registered_then_drift_fails_the_check(server, quality_pipeline, unique_name):
    pipeline, data = quality_pipeline
    client, s3 = server.client("sagemaker"), server.client("s3")

    # 1. The first run: no previous baseline, so skip the check and register the new one.
    first = pipeline.start(parameters={"DatasetUri": f"{data}/baseline.csv", "SkipCheck": True,
                                       "RegisterNewBaseline": True})
    assert wait(client, first.arn)["PipelineExecutionStatus"] == "Succeeded", steps_of(client, first.arn)
    step = steps_of(client, first.arn)["DataQualityCheck"]
    metadata = step["Metadata"]["QualityCheck"]
    assert metadata["CheckType"] == "DATA_QUALITY"
    assert metadata["SkipCheck"] is True and metadata["RegisterNewBaseline"] is True
    assert metadata["ModelPackageGroupName"] == unique_name
    assert metadata["CheckJobArn"].split("/")[-1].startswith("pipelines-")
    assert "ViolationReport" not in metadata
    calculated = metadata["CalculatedBaselineStatistics"]
    assert calculated.endswith(f"/{first.arn.split('/')[-1]}/statistics.json")
    assert metadata["BaselineUsedForDriftCheckStatistics"] == calculated
    assert metadata["BaselineUsedForDriftCheckConstraints"] == metadata["CalculatedBaselineConstraints"]
    statistics = read_json(s3, calculated)
    amount = next(f for f in statistics["features"] if f["name"] == "amount")
    assert amount["numerical_statistics"]["common"]["num_present"] == ROWS
    assert abs(amount["numerical_statistics"]["mean"] - 100.0) < 2.0
    assert read_json(s3, metadata["CalculatedBaselineConstraints"])["features"]

    packages = client.list_model_packages(ModelPackageGroupName=unique_name)["ModelPackageSummaryList"]
    assert len(packages) == 1
    package = client.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    assert package["ModelApprovalStatus"] == "Approved"
    drift = package["DriftCheckBaselines"]["ModelDataQuality"]
    assert drift["Statistics"] == {"ContentType": "application/json", "S3Uri": calculated}
    assert drift["Constraints"]["S3Uri"] == metadata["CalculatedBaselineConstraints"]
    assert package["ModelMetrics"]["ModelDataQuality"]["Statistics"]["S3Uri"] == calculated

    # 2. A drifted dataset, checked against the approved version's baseline: the step fails.
    second = pipeline.start(parameters={"DatasetUri": f"{data}/drifted.csv"})
    description = wait(client, second.arn)
    assert description["PipelineExecutionStatus"] == "Failed"
    steps = steps_of(client, second.arn)
    assert not any(name.startswith("Register") for name in steps)
    failed = steps["DataQualityCheck"]
    assert failed["StepStatus"] == "Failed"
    reason = failed["FailureReason"]
    assert reason.startswith("ClientError: Quality check failed. See violation report")
    assert "amount" in reason and "baseline_drift_check" in reason
    metadata = failed["Metadata"]["QualityCheck"]
    assert metadata["SkipCheck"] is False and metadata["RegisterNewBaseline"] is False
    assert metadata["BaselineUsedForDriftCheckStatistics"] == calculated  # from the registry
    report = read_json(s3, metadata["ViolationReport"])
    assert any(v["feature_name"] == "amount" and v["constraint_check_type"] == "baseline_drift_check"
               for v in report["violations"])
    assert metadata["ViolationReport"] in reason

    # 3. A clean dataset against a supplied baseline: the check passes and carries it over.
    third = pipeline.start(parameters={
        "DatasetUri": f"{data}/clean.csv",
        "SuppliedBaselineStatistics": calculated,
        "SuppliedBaselineConstraints": drift["Constraints"]["S3Uri"]})
    assert wait(client, third.arn)["PipelineExecutionStatus"] == "Succeeded", \
        steps_of(client, third.arn)["DataQualityCheck"].get("FailureReason")
    metadata = steps_of(client, third.arn)["DataQualityCheck"]["Metadata"]["QualityCheck"]
    assert "ViolationReport" not in metadata
    assert metadata["BaselineUsedForDriftCheckStatistics"] == calculated
    assert metadata["CalculatedBaselineStatistics"] != calculated
    # A checking run calculates the new baseline too, constraints included.
    suggested = read_json(s3, metadata["CalculatedBaselineConstraints"])
    assert [f["name"] for f in suggested["features"]] == ["amount", "items", "channel"]
    channel = next(f for f in suggested["features"] if f["name"] == "channel")
    assert sorted(channel["string_constraints"]["domains"]) == ["phone", "store", "web"]
    assert suggested["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1
    newest = client.list_model_packages(ModelPackageGroupName=unique_name, SortBy="CreationTime",
                                        SortOrder="Descending")["ModelPackageSummaryList"][0]
    carried = client.describe_model_package(ModelPackageName=newest["ModelPackageArn"])
    assert carried["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"] == calculated

    # 4. fail_on_violation=False: the drift is reported, the step succeeds, the model registers.
    fourth = pipeline.start(parameters={"DatasetUri": f"{data}/drifted.csv",
                                        "FailOnViolation": False})
    assert wait(client, fourth.arn)["PipelineExecutionStatus"] == "Succeeded"
    metadata = steps_of(client, fourth.arn)["DataQualityCheck"]["Metadata"]["QualityCheck"]
    report = read_json(s3, metadata["ViolationReport"])
    assert any(v["feature_name"] == "amount" for v in report["violations"])

    # 5. The third run's parameters again: the cached check is reused, not run.
    fifth = pipeline.start(parameters={
        "DatasetUri": f"{data}/clean.csv",
        "SuppliedBaselineStatistics": calculated,
        "SuppliedBaselineConstraints": drift["Constraints"]["S3Uri"]})
    assert wait(client, fifth.arn)["PipelineExecutionStatus"] == "Succeeded"
    cached = steps_of(client, fifth.arn)["DataQualityCheck"]
    assert cached["CacheHitResult"]["SourcePipelineExecutionArn"] == third.arn
    assert cached["Metadata"]["QualityCheck"]["CalculatedBaselineStatistics"] == \
        steps_of(client, third.arn)["DataQualityCheck"]["Metadata"]["QualityCheck"][
            "CalculatedBaselineStatistics"]


def test_a_check_without_any_previous_baseline_fails_saying_what_to_do(server, quality_pipeline,
                                                                        unique_name):
    pipeline, data = quality_pipeline
    client = server.client("sagemaker")
    execution = pipeline.start(parameters={"DatasetUri": f"{data}/baseline.csv"})
    assert wait(client, execution.arn)["PipelineExecutionStatus"] == "Failed"
    step = steps_of(client, execution.arn)["DataQualityCheck"]
    assert step["StepStatus"] == "Failed"
    assert "needs a previous DATA_QUALITY baseline" in step["FailureReason"]
    assert f"no Approved version of model package group {unique_name}" in step["FailureReason"]
    assert "skip_check=True" in step["FailureReason"]
    assert "CheckJobArn" not in step["Metadata"].get("QualityCheck", {})


def predictions(seed: int, accuracy: float) -> str:
    """CSV with a header: the true label, the predicted label and its probability."""
    rng = random.Random(seed)
    lines = ["label,prediction,probability"]
    for _ in range(600):
        label = rng.randint(0, 1)
        right = rng.random() < accuracy
        prediction = label if right else 1 - label
        probability = rng.uniform(0.5, 1.0) if prediction == 1 else rng.uniform(0.0, 0.5)
        lines.append(f"{label},{prediction},{probability:.4f}")
    return "\n".join(lines) + "\n"


def test_model_quality_check_registers_then_fails_on_worse_predictions(server, unique_name):
    import sagemaker
    from sagemaker import Model
    from sagemaker.drift_check_baselines import DriftCheckBaselines
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.model_monitor import DatasetFormat
    from sagemaker.workflow.check_job_config import CheckJobConfig
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterBoolean, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.quality_check_step import ModelQualityCheckConfig, QualityCheckStep

    bucket = sdk_session().default_bucket()
    s3, client = server.client("s3"), server.client("sagemaker")
    for file, text in (("good.csv", predictions(1, 0.92)), ("worse.csv", predictions(2, 0.6))):
        s3.put_object(Bucket=bucket, Key=f"{unique_name}/data/{file}", Body=text.encode())
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/model.tar.gz", Body=model_tarball())
    session = PipelineSession(default_bucket=bucket)
    role = sagemaker.get_execution_role()
    data = ParameterString("DatasetUri")
    skip_check = ParameterBoolean("SkipCheck", default_value=False)
    register_new = ParameterBoolean("RegisterNewBaseline", default_value=False)
    check = QualityCheckStep(
        "ModelQualityCheck",
        quality_check_config=ModelQualityCheckConfig(
            baseline_dataset=data, dataset_format=DatasetFormat.csv(header=True),
            problem_type="BinaryClassification", inference_attribute="prediction",
            probability_attribute="probability", ground_truth_attribute="label",
            output_s3_uri=Join(on="/", values=[f"s3://{bucket}/{unique_name}/checks",
                                               ExecutionVariables.PIPELINE_EXECUTION_ID])),
        check_job_config=CheckJobConfig(role=role, instance_count=1,
                                        instance_type="ml.m5.xlarge", sagemaker_session=session),
        skip_check=skip_check, register_new_baseline=register_new,
        model_package_group_name=unique_name)

    def source(uri) -> MetricsSource:  # noqa: ANN001 - a pipeline property
        return MetricsSource(s3_uri=uri, content_type="application/json")

    model = Model(image_uri=SKLEARN_IMAGE, model_data=f"s3://{bucket}/{unique_name}/model.tar.gz",
                  role=role, sagemaker_session=session)
    register = ModelStep("Register", depends_on=[check], step_args=model.register(
        content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        model_package_group_name=unique_name, approval_status="Approved",
        model_metrics=ModelMetrics(
            model_statistics=source(check.properties.CalculatedBaselineStatistics),
            model_constraints=source(check.properties.CalculatedBaselineConstraints)),
        drift_check_baselines=DriftCheckBaselines(
            model_statistics=source(check.properties.BaselineUsedForDriftCheckStatistics),
            model_constraints=source(check.properties.BaselineUsedForDriftCheckConstraints))))
    pipeline = Pipeline(unique_name, parameters=[data, skip_check, register_new],
                        steps=[check, register], sagemaker_session=session)
    pipeline.upsert(role_arn=role)

    first = pipeline.start(parameters={"DatasetUri": f"s3://{bucket}/{unique_name}/data/good.csv",
                                       "SkipCheck": True, "RegisterNewBaseline": True})
    assert wait(client, first.arn)["PipelineExecutionStatus"] == "Succeeded", \
        steps_of(client, first.arn)["ModelQualityCheck"].get("FailureReason")
    metadata = steps_of(client, first.arn)["ModelQualityCheck"]["Metadata"]["QualityCheck"]
    assert metadata["CheckType"] == "MODEL_QUALITY"
    statistics = read_json(s3, metadata["CalculatedBaselineStatistics"])
    assert abs(statistics["binary_classification_metrics"]["accuracy"]["value"] - 0.92) < 0.05
    constraints = read_json(s3, metadata["CalculatedBaselineConstraints"])
    assert "accuracy" in constraints["binary_classification_constraints"]
    arn = client.list_model_packages(ModelPackageGroupName=unique_name)[
        "ModelPackageSummaryList"][0]["ModelPackageArn"]
    drift = client.describe_model_package(ModelPackageName=arn)["DriftCheckBaselines"]
    assert drift["ModelQuality"]["Constraints"]["S3Uri"] == metadata["CalculatedBaselineConstraints"]

    second = pipeline.start(parameters={"DatasetUri": f"s3://{bucket}/{unique_name}/data/worse.csv"})
    assert wait(client, second.arn)["PipelineExecutionStatus"] == "Failed"
    failed = steps_of(client, second.arn)["ModelQualityCheck"]
    assert failed["StepStatus"] == "Failed"
    assert failed["FailureReason"].startswith("ClientError: Quality check failed.")
    assert "accuracy" in failed["FailureReason"]
    metadata = failed["Metadata"]["QualityCheck"]
    assert metadata["BaselineUsedForDriftCheckConstraints"] == \
        drift["ModelQuality"]["Constraints"]["S3Uri"]
    # The checking run calculated its own baseline as well: the worse accuracy.
    worse = read_json(s3, metadata["CalculatedBaselineConstraints"])
    assert worse["binary_classification_constraints"]["accuracy"]["threshold"] < 0.75
