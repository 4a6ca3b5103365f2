"""The pipeline TuningStep: a real tuning job whose top trials feed later steps.

A tiny scikit-learn script scores a continuous hyperparameter ``level`` (best at 0.3) and
writes the value it was given into its model; the pipeline tunes it, registers the top
model (``get_top_model_s3_uri(top_k=0)``) and makes a model of the runner-up
(``top_k=1``), so the test can tell, by the artifacts' contents, that the right trials'
models were used. (Script mode passes a one-letter hyperparameter as ``-x``, hence ``level``.)
"""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import wait_for_status

TRAIN = """\
import argparse, os, time
parser = argparse.ArgumentParser()
parser.add_argument("--level", type=float, required=True)
parser.add_argument("--sleep", type=float, default=0.0)
args, _ = parser.parse_known_args()
time.sleep(args.sleep)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "level.txt"), "w") as handle:
    handle.write(repr(args.level))
print(f"score: {1 - (args.level - 0.3) ** 2:.6f}")
"""
METRICS = [{"Name": "score", "Regex": "score: ([-0-9.]+)"}]
TERMINAL = {"Succeeded", "Failed", "Stopped"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tuning-step-source")
    (directory / "train.py").write_text(TRAIN)
    return directory


def tuning_step(session, source, bucket: str, prefix: str, *, jobs: int, sleep: float = 0.0,
                name: str = "Tune", cache: bool = False):
    from sagemaker import get_execution_role
    from sagemaker.sklearn import SKLearn
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner
    from sagemaker.workflow.steps import CacheConfig, TuningStep

    estimator = SKLearn(
        entry_point="train.py", source_dir=str(source), framework_version="1.2-1",
        role=get_execution_role(session), instance_count=1, instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/{prefix}/models", code_location=f"s3://{bucket}/{prefix}/code",
        hyperparameters={"sleep": sleep}, sagemaker_session=session)
    tuner = HyperparameterTuner(
        estimator, objective_metric_name="score", metric_definitions=METRICS,
        hyperparameter_ranges={"level": ContinuousParameter(0.0, 1.0)}, strategy="Random",
        max_jobs=jobs, max_parallel_jobs=jobs, random_seed=7)
    return TuningStep(name=name, step_args=tuner.fit(), cache_config=CacheConfig(cache, "P1D")
                      if cache else None)


def read_model_level(server, uri: str) -> float:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return float(archive.extractfile("level.txt").read())


def steps_of(client, arn: str) -> dict[str, dict]:
    return {step["StepName"]: step for step in client.list_pipeline_execution_steps(
        PipelineExecutionArn=arn, MaxResults=100)["PipelineExecutionSteps"]}


def wait_execution(client, arn: str, timeout: float = 180) -> dict:
    return wait_for_status(lambda: client.describe_pipeline_execution(PipelineExecutionArn=arn),
                           "PipelineExecutionStatus", TERMINAL, timeout=timeout)


def test_top_models_of_a_tuning_step_feed_register_and_model_steps_and_cache(
        server, source, unique_name):
    from sagemaker import get_execution_role, image_uris
    from sagemaker.model import Model
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession

    session = PipelineSession()
    role = get_execution_role(session)
    bucket = session.default_bucket()
    tune = tuning_step(session, source, bucket, unique_name, jobs=3, cache=True)
    image = image_uris.retrieve("sklearn", session.boto_region_name, "1.2-1")
    # No entry point: the SDK would add a repack step for one.
    best = Model(image_uri=image, role=role, sagemaker_session=session, model_data=tune.get_top_model_s3_uri(
        top_k=0, s3_bucket=bucket, prefix=f"{unique_name}/models"))
    register = ModelStep(name="RegisterBest", step_args=best.register(
        content_types=["text/csv"], response_types=["text/csv"],
        model_package_group_name=f"{unique_name}-group"))
    runner_up = ModelStep(name="MakeRunnerUp", step_args=Model(
        image_uri=image, role=role, sagemaker_session=session,
        model_data=tune.get_top_model_s3_uri(top_k=1, s3_bucket=bucket, prefix=f"{unique_name}/models"),
    ).create(instance_type="ml.m5.large"))
    pipeline = Pipeline(name=unique_name, steps=[tune, register, runner_up], sagemaker_session=session)
    pipeline.upsert(role_arn=role)
    client = server.client("sagemaker")
    definition = json.loads(client.describe_pipeline(PipelineName=unique_name)["PipelineDefinition"])
    assert [step["Type"] for step in definition["Steps"]] == ["Tuning", "RegisterModel", "Model"]

    first = client.start_pipeline_execution(PipelineName=unique_name)["PipelineExecutionArn"]
    described = wait_execution(client, first)
    steps = steps_of(client, first)
    assert described["PipelineExecutionStatus"] == "Succeeded", {
        name: (step["StepStatus"], step.get("FailureReason")) for name, step in steps.items()}
    tuning_arn = steps["Tune"]["Metadata"]["TuningJob"]["Arn"]
    tuning_name = tuning_arn.rsplit("/", 1)[1]
    tuning = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_name)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    trials = client.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_name, MaxResults=100)["TrainingJobSummaries"]
    assert len(trials) == 3
    ranked = sorted(trials, key=lambda trial: -trial[
        "FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert tuning["BestTrainingJob"]["TrainingJobName"] == ranked[0]["TrainingJobName"]

    def artifact(trial: dict) -> str:
        return f"s3://{bucket}/{unique_name}/models/{trial['TrainingJobName']}/output/model.tar.gz"

    package_arn = steps["RegisterBest-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    package = client.describe_model_package(ModelPackageName=package_arn)
    model_url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert model_url == artifact(ranked[0])
    # The artifact really is the best trial's: it holds the level that trial was given.
    assert read_model_level(server, model_url) == float(ranked[0]["TunedHyperParameters"]["level"])
    model_name = steps["MakeRunnerUp-CreateModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1]
    model = client.describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifact(ranked[1])

    # Unchanged, the tuning step is a cache hit: no new tuning job, the same top model.
    second = client.start_pipeline_execution(PipelineName=unique_name)["PipelineExecutionArn"]
    assert wait_execution(client, second)["PipelineExecutionStatus"] == "Succeeded"
    steps = steps_of(client, second)
    assert steps["Tune"]["CacheHitResult"]["SourcePipelineExecutionArn"] == first
    assert steps["Tune"]["Metadata"]["TuningJob"]["Arn"] == tuning_arn
    package = client.describe_model_package(
        ModelPackageName=steps["RegisterBest-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"])
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == artifact(ranked[0])


ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def tuning_request(output: str, *, jobs: int, scaling: str = "Linear", static: dict | None = None) -> dict:
    """A CreateHyperParameterTuningJob request without its name, as a pipeline step's Arguments."""
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random", "RandomSeed": 3,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": jobs, "MaxParallelTrainingJobs": jobs},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "level", "MinValue": "0", "MaxValue": "1", "ScalingType": scaling}]},
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
                                       "MetricDefinitions": METRICS},
            "StaticHyperParameters": static or {},
            "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": output},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        },
    }


def definition(*steps: dict) -> str:
    return json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": list(steps)})


def test_stopping_the_execution_stops_the_tuning_job_and_its_trials(server, unique_name):
    client, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket=unique_name)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("train.py")
        info.size = len(TRAIN.encode())
        archive.addfile(info, io.BytesIO(TRAIN.encode()))
    s3.put_object(Bucket=unique_name, Key="code/sourcedir.tar.gz", Body=buffer.getvalue())
    request = tuning_request(f"s3://{unique_name}/models", jobs=2, static={
        "sagemaker_program": '"train.py"', "sleep": "600",
        "sagemaker_submit_directory": f'"s3://{unique_name}/code/sourcedir.tar.gz"'})
    client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE, PipelineDefinition=definition(
        {"Name": "Tune", "Type": "Tuning", "Arguments": request}))
    arn = client.start_pipeline_execution(PipelineName=unique_name)["PipelineExecutionArn"]

    deadline = time.monotonic() + 120
    while True:  # until a trial runs
        tuning_arn = steps_of(client, arn).get("Tune", {}).get("Metadata", {}).get(
            "TuningJob", {}).get("Arn")
        trials = [] if tuning_arn is None else client.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_arn.rsplit("/", 1)[1])["TrainingJobSummaries"]
        if any(trial["TrainingJobStatus"] == "InProgress" for trial in trials):
            break
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.2)
    client.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert wait_execution(client, arn, timeout=120)["PipelineExecutionStatus"] == "Stopped"
    assert steps_of(client, arn)["Tune"]["StepStatus"] == "Stopped"
    tuning_name = tuning_arn.rsplit("/", 1)[1]
    tuning = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_name)
    assert tuning["HyperParameterTuningJobStatus"] == "Stopped"
    trials = client.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_name)["TrainingJobSummaries"]
    assert trials and all(trial["TrainingJobStatus"] == "Stopped" for trial in trials)
    assert tuning["TrainingJobStatusCounters"]["Stopped"] == len(trials)


def test_a_tuning_step_property_path_is_checked_and_a_bad_request_fails_the_step(
        server, unique_name):
    client = server.client("sagemaker")
    tune = {"Name": "Tune", "Type": "Tuning",
            "Arguments": tuning_request("s3://nowhere/out", jobs=2, scaling="Logarithmic")}
    register = {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": f"{unique_name}-group",
        "InferenceSpecification": {"Containers": [{"Image": SKLEARN_IMAGE, "ModelDataUrl": {
            "Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobNam"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}}}
    with pytest.raises(ClientError) as refused:
        client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE,
                               PipelineDefinition=definition(tune, register))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "TrainingJobNam" in refused.value.response["Error"]["Message"]

    # MinValue 0 on a Logarithmic range: the tuning job is refused, and the step says why.
    client.create_pipeline(PipelineName=unique_name, RoleArn=ROLE, PipelineDefinition=definition(tune))
    arn = client.start_pipeline_execution(PipelineName=unique_name)["PipelineExecutionArn"]
    assert wait_execution(client, arn, timeout=180)["PipelineExecutionStatus"] == "Failed"
    step = steps_of(client, arn)["Tune"]
    assert step["StepStatus"] == "Failed"
    assert step["FailureReason"].startswith("ValidationException")
    assert "Logarithmic" in step["FailureReason"]
