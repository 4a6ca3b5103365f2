"""Batch transform really runs: an XGBoost model trained here scores S3 files through its
model server, and the outputs match what XGBoost itself predicts from the same model file."""

from __future__ import annotations

import io
import json
import tarfile
import time

import numpy
import pytest
from botocore.exceptions import ClientError

from jobs_helpers import sdk_session, wait_for_status

REGION = "us-east-1"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
TERMINAL = {"Completed", "Failed", "Stopped"}


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """A built-in XGBoost model trained by a real training job, its model file, and data."""
    import xgboost
    from sagemaker import get_execution_role
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sklearn.datasets import load_breast_cancer

    session = sdk_session()
    bucket = session.default_bucket()
    features, labels = load_breast_cancer(return_X_y=True)
    rows = numpy.column_stack([labels, features])
    text = "\n".join(",".join(f"{value:g}" for value in row) for row in rows) + "\n"
    train_uri = session.upload_string_as_file_body(text, bucket, "transform-tests/train/data.csv")
    estimator = Estimator(
        image_uri=XGBOOST_IMAGE, role=get_execution_role(session), instance_count=1,
        instance_type="ml.m5.xlarge", output_path=f"s3://{bucket}/transform-tests/models",
        sagemaker_session=session,
        hyperparameters={"objective": "binary:logistic", "num_round": 30, "max_depth": 3},
    )
    estimator.fit({"train": TrainingInput(train_uri.rsplit("/", 1)[0], content_type="text/csv")},
                  logs=False)
    model_uri = estimator.model_data
    s3 = server.client("s3")
    location = model_uri[len("s3://"):].partition("/")
    archive = s3.get_object(Bucket=location[0], Key=location[2])["Body"].read()
    directory = tmp_path_factory.mktemp("xgboost-model")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tarball:
        tarball.extractall(directory, filter="data")
    booster = xgboost.Booster(model_file=str(directory / "xgboost-model"))
    model_name = f"transform-tests-{int(time.time())}"
    server.client("sagemaker").create_model(
        ModelName=model_name, ExecutionRoleArn=get_execution_role(session),
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": model_uri})
    return {"estimator": estimator, "booster": booster, "features": features, "bucket": bucket,
            "model_name": model_name, "model_uri": model_uri}


def sample_rows(features: numpy.ndarray, count: int, seed: int) -> numpy.ndarray:
    rng = numpy.random.default_rng(seed)
    picked = features[rng.integers(0, len(features), count)]
    return numpy.round(picked * rng.normal(1.0, 0.05, picked.shape), 4).astype(numpy.float32)


def csv_text(rows: numpy.ndarray, ids: bool = False) -> str:
    lines = []
    for index, row in enumerate(rows):
        values = ",".join(f"{value:g}" for value in row)
        lines.append(f"id-{index},{values}" if ids else values)
    return "\n".join(lines) + "\n"


def predict(booster, rows: numpy.ndarray) -> numpy.ndarray:
    import xgboost

    return booster.predict(xgboost.DMatrix(rows))


def reparsed(rows: numpy.ndarray) -> numpy.ndarray:
    """The rows as the model server reads them back from the CSV text."""
    return numpy.array([[float(f"{value:g}") for value in row] for row in rows], dtype=numpy.float32)


def read(s3, uri: str) -> str:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def run_job(client, name: str, timeout: float = 600, **request) -> dict:
    client.create_transform_job(TransformJobName=name, **request)
    return wait_for_status(lambda: client.describe_transform_job(TransformJobName=name),
                           "TransformJobStatus", TERMINAL, timeout=timeout)


def log_lines(server, job: str) -> list[str]:
    """The job's log lines so far (none before its log group exists)."""
    logs = server.client("logs")
    group = "/aws/sagemaker/TransformJobs"
    try:
        streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [event["message"] for stream in streams["logStreams"] for event in logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)["events"]]


def job_request(trained, input_uri: str, output_uri: str, **extra) -> dict:
    transform_input = {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                       "ContentType": "text/csv", "SplitType": "Line"}
    transform_input.update(extra.pop("TransformInput", {}))
    return {"ModelName": trained["model_name"], "TransformInput": transform_input,
            "TransformOutput": {"S3OutputPath": output_uri, "AssembleWith": "Line",
                                **extra.pop("TransformOutput", {})},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}, **extra}


def test_multirecord_join_with_filters_over_10000_lines(server, trained, unique_name):
    s3, client = server.client("s3"), server.client("sagemaker")
    bucket = trained["bucket"]
    rows = sample_rows(trained["features"], 10_000, seed=1)
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/in/part/scores.csv",
                  Body=csv_text(rows, ids=True).encode())
    output = f"s3://{bucket}/{unique_name}/out"
    description = run_job(client, unique_name, **job_request(
        trained, f"s3://{bucket}/{unique_name}/in", output,
        BatchStrategy="MultiRecord", MaxPayloadInMB=1, MaxConcurrentTransforms=2,
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}))
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert description["TransformStartTime"] <= description["TransformEndTime"]
    assert description["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input",
                                             "OutputFilter": "$[0,-1]"}

    lines = read(s3, f"{output}/part/scores.csv.out").splitlines()
    assert len(lines) == 10_000
    assert [line.split(",")[0] for line in lines] == [f"id-{index}" for index in range(10_000)]
    got = numpy.array([float(line.split(",")[1]) for line in lines])
    assert all(len(line.split(",")) == 2 for line in lines)
    numpy.testing.assert_allclose(got, predict(trained["booster"], reparsed(rows)), atol=1e-6)

    streams = server.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix=f"{unique_name}/")
    assert len(streams["logStreams"]) == 1
    events = server.client("logs").get_log_events(
        logGroupName="/aws/sagemaker/TransformJobs",
        logStreamName=streams["logStreams"][0]["logStreamName"], startFromHead=True)["events"]
    assert any("10000 records" in event["message"] for event in events)
    summaries = client.list_transform_jobs(NameContains=unique_name)["TransformJobSummaries"]
    assert [item["TransformJobName"] for item in summaries] == [unique_name]
    assert summaries[0]["TransformJobStatus"] == "Completed"


def test_full_join_single_record_and_json_records(server, trained, unique_name):
    s3, client = server.client("s3"), server.client("sagemaker")
    bucket = trained["bucket"]
    rows = sample_rows(trained["features"], 40, seed=2)
    expected = predict(trained["booster"], reparsed(rows))
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/csv/a.csv", Body=csv_text(rows).encode())
    description = run_job(client, f"{unique_name}-csv", **job_request(
        trained, f"s3://{bucket}/{unique_name}/csv/", f"s3://{bucket}/{unique_name}/csv-out",
        BatchStrategy="SingleRecord", DataProcessing={"JoinSource": "Input"}))
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    lines = read(s3, f"s3://{bucket}/{unique_name}/csv-out/a.csv.out").splitlines()
    assert [line.rsplit(",", 1)[0] for line in lines] == csv_text(rows).splitlines()
    numpy.testing.assert_allclose([float(line.rsplit(",", 1)[1]) for line in lines], expected,
                                  atol=1e-6)

    records = [json.dumps({"id": index, "features": [float(f"{v:g}") for v in row]})
               for index, row in enumerate(rows)]
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/json/a.jsonl", Body="\n".join(records).encode())
    description = run_job(client, f"{unique_name}-json", **job_request(
        trained, f"s3://{bucket}/{unique_name}/json/", f"s3://{bucket}/{unique_name}/json-out",
        BatchStrategy="SingleRecord", TransformInput={"ContentType": "application/json"},
        DataProcessing={"InputFilter": "$.features", "JoinSource": "Input",
                        "OutputFilter": "$['id','SageMakerOutput']"}))
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    outputs = [json.loads(line) for line in
               read(s3, f"s3://{bucket}/{unique_name}/json-out/a.jsonl.out").splitlines()]
    assert [item["id"] for item in outputs] == list(range(40))
    assert all(set(item) == {"id", "SageMakerOutput"} for item in outputs)
    numpy.testing.assert_allclose([item["SageMakerOutput"] for item in outputs], expected, atol=1e-6)


def test_split_none_over_a_manifest_keeps_relative_paths(server, trained, unique_name):
    s3, client = server.client("s3"), server.client("sagemaker")
    bucket = trained["bucket"]
    files = {"day1/a.csv": sample_rows(trained["features"], 3, seed=3),
             "day2/b.csv": sample_rows(trained["features"], 5, seed=4),
             "c.csv": sample_rows(trained["features"], 1, seed=5)}
    for relative, rows in files.items():
        s3.put_object(Bucket=bucket, Key=f"{unique_name}/data/{relative}", Body=csv_text(rows).encode())
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/data/unlisted.csv", Body=b"not,scored\n")
    manifest = [{"prefix": f"s3://{bucket}/{unique_name}/data/"}, "day1/a.csv", "day2/b.csv", "c.csv"]
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/manifest.json", Body=json.dumps(manifest).encode())
    output = f"s3://{bucket}/{unique_name}/out"
    description = run_job(client, unique_name, **job_request(
        trained, f"s3://{bucket}/{unique_name}/manifest.json", output, BatchStrategy="MultiRecord",
        TransformInput={"SplitType": "None", "DataSource": {"S3DataSource": {
            "S3DataType": "ManifestFile", "S3Uri": f"s3://{bucket}/{unique_name}/manifest.json"}}},
        TransformOutput={"AssembleWith": "None"}))
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    keys = {item["Key"] for item in s3.list_objects_v2(
        Bucket=bucket, Prefix=f"{unique_name}/out/")["Contents"]}
    assert keys == {f"{unique_name}/out/{relative}.out" for relative in files}
    for relative, rows in files.items():
        got = [float(value) for value in read(s3, f"{output}/{relative}.out").split()]
        numpy.testing.assert_allclose(got, predict(trained["booster"], reparsed(rows)), atol=1e-6)


def test_stop_a_running_job(server, trained, unique_name):
    s3, client = server.client("s3"), server.client("sagemaker")
    bucket = trained["bucket"]
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/in/big.csv",
                  Body=csv_text(sample_rows(trained["features"], 100_000, seed=6)).encode())
    client.create_transform_job(TransformJobName=unique_name, **job_request(
        trained, f"s3://{bucket}/{unique_name}/in/", f"s3://{bucket}/{unique_name}/out",
        BatchStrategy="SingleRecord", MaxConcurrentTransforms=1))
    deadline = time.monotonic() + 300
    while not any("100000 records" in line for line in log_lines(server, unique_name)):
        assert time.monotonic() < deadline, "the job never started feeding records"
        assert client.describe_transform_job(TransformJobName=unique_name)["TransformJobStatus"] == "InProgress"
        time.sleep(0.3)
    client.stop_transform_job(TransformJobName=unique_name)
    assert client.describe_transform_job(TransformJobName=unique_name)["TransformJobStatus"] in (
        "Stopping", "Stopped")
    description = wait_for_status(lambda: client.describe_transform_job(TransformJobName=unique_name),
                                  "TransformJobStatus", TERMINAL, timeout=120)
    assert description["TransformJobStatus"] == "Stopped"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"{unique_name}/out/")
    with pytest.raises(ClientError, match="only InProgress jobs can be stopped"):
        client.stop_transform_job(TransformJobName=unique_name)


def test_failures_name_the_record_and_the_model_error(server, trained, unique_name):
    s3, client = server.client("s3"), server.client("sagemaker")
    bucket = trained["bucket"]
    rows = sample_rows(trained["features"], 20, seed=7)
    text = csv_text(rows).splitlines()
    text[12] = "1,2,3"  # three features where the model needs 30
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/in/x.csv", Body="\n".join(text).encode())
    description = run_job(client, f"{unique_name}-record", **job_request(
        trained, f"s3://{bucket}/{unique_name}/in/", f"s3://{bucket}/{unique_name}/out",
        BatchStrategy="SingleRecord"))
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith("ClientError:") and "x.csv record 13" in reason
    assert "400" in reason and "Unable to evaluate payload" in reason

    broken = io.BytesIO()
    with tarfile.open(fileobj=broken, mode="w:gz") as archive:
        payload = b"this is not an xgboost model"
        member = tarfile.TarInfo("xgboost-model")
        member.size = len(payload)
        archive.addfile(member, io.BytesIO(payload))
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/broken/model.tar.gz", Body=broken.getvalue())
    client.create_model(ModelName=f"{unique_name}-broken", PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl":
                                          f"s3://{bucket}/{unique_name}/broken/model.tar.gz"})
    request = job_request(trained, f"s3://{bucket}/{unique_name}/in/", f"s3://{bucket}/{unique_name}/out2")
    request["ModelName"] = f"{unique_name}-broken"
    description = run_job(client, f"{unique_name}-model", **request)
    assert description["TransformJobStatus"] == "Failed"
    assert "exited before it was ready" in description["FailureReason"]
    assert "ModelError" in description["FailureReason"]


def test_requests_modelyard_cannot_run_are_refused(server, trained, unique_name):
    client = server.client("sagemaker")
    bucket = trained["bucket"]
    base = job_request(trained, f"s3://{bucket}/x/", f"s3://{bucket}/y")
    for change, message in (
            ({"TransformInput": {**base["TransformInput"], "SplitType": "RecordIO"}}, "RecordIO"),
            ({"DataProcessing": {"InputFilter": "$..deep"}}, "InputFilter"),
            ({"ModelName": "no-such-model"}, "Could not find model"),
            ({"TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2}},
             "InstanceCount")):
        with pytest.raises(ClientError, match=message) as raised:
            client.create_transform_job(TransformJobName=unique_name, **{**base, **change})
        assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="does not exist"):
        client.describe_transform_job(TransformJobName=unique_name)


def test_sdk_estimator_transformer(server, trained, unique_name, capsys):
    session = sdk_session()
    bucket = trained["bucket"]
    rows = sample_rows(trained["features"], 500, seed=8)
    data = session.upload_string_as_file_body(csv_text(rows), bucket, f"{unique_name}/test.csv")
    transformer = trained["estimator"].transformer(
        1, "ml.m5.xlarge", strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        output_path=f"s3://{bucket}/{unique_name}/out")
    transformer.transform(data, split_type="Line", content_type="text/csv", wait=True, logs=True)
    assert "modelyard model server ready" in capsys.readouterr().out  # the job's log reached the SDK
    description = server.client("sagemaker").describe_transform_job(
        TransformJobName=transformer.latest_transform_job.name)
    assert description["TransformJobStatus"] == "Completed"
    assert description["BatchStrategy"] == "MultiRecord"
    got = [float(line) for line in read(server.client("s3"),
                                        f"s3://{bucket}/{unique_name}/out/test.csv.out").split()]
    numpy.testing.assert_allclose(got, predict(trained["booster"], reparsed(rows)), atol=1e-6)


def test_transform_step_in_a_pipeline_with_model_step_and_cache(server, trained, unique_name):
    from sagemaker import get_execution_role
    from sagemaker.model import Model
    from sagemaker.transformer import Transformer
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.steps import CacheConfig, TransformStep

    session = PipelineSession()
    role = get_execution_role(session)
    bucket = trained["bucket"]
    rows = sample_rows(trained["features"], 300, seed=9)
    data = session.upload_string_as_file_body(csv_text(rows), bucket, f"{unique_name}/in/d.csv")
    model = Model(image_uri=XGBOOST_IMAGE, model_data=trained["model_uri"], role=role,
                  sagemaker_session=session)
    make = ModelStep(name="Make", step_args=model.create(instance_type="ml.m5.large"))
    score = TransformStep(name="Score", step_args=Transformer(
        model_name=make.properties.ModelName, instance_count=1, instance_type="ml.m5.large",
        strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        output_path=f"s3://{bucket}/{unique_name}/score", sagemaker_session=session,
    ).transform(data, content_type="text/csv", split_type="Line"))
    fixed = TransformStep(name="ScoreFixed", cache_config=CacheConfig(True, "P1D"), step_args=Transformer(
        model_name=trained["model_name"], instance_count=1, instance_type="ml.m5.large",
        strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        output_path=f"s3://{bucket}/{unique_name}/fixed", sagemaker_session=session,
    ).transform(data, content_type="text/csv", split_type="Line", join_source="Input"))
    pipeline = Pipeline(name=unique_name, steps=[make, score, fixed], sagemaker_session=session)
    pipeline.upsert(role_arn=role)
    client = server.client("sagemaker")

    first = pipeline.start()
    first.wait(delay=1, max_attempts=600)
    steps = {step["StepName"]: step for step in first.list_steps()}
    assert {name: step["StepStatus"] for name, step in steps.items()} == {
        "Make-CreateModel": "Succeeded", "Score": "Succeeded", "ScoreFixed": "Succeeded"}
    model_arn = steps["Make-CreateModel"]["Metadata"]["Model"]["Arn"]
    job_arn = steps["Score"]["Metadata"]["TransformJob"]["Arn"]
    job = client.describe_transform_job(TransformJobName=job_arn.rsplit("/", 1)[1])
    assert job["ModelName"].lower() == model_arn.rsplit("/", 1)[1]
    expected = predict(trained["booster"], reparsed(rows))
    s3 = server.client("s3")
    got = [float(line) for line in read(s3, f"s3://{bucket}/{unique_name}/score/d.csv.out").split()]
    numpy.testing.assert_allclose(got, expected, atol=1e-6)
    joined = read(s3, f"s3://{bucket}/{unique_name}/fixed/d.csv.out").splitlines()
    numpy.testing.assert_allclose([float(line.rsplit(",", 1)[1]) for line in joined], expected, atol=1e-6)

    jobs_before = len(client.list_transform_jobs(NameContains="pipelines-", MaxResults=100)[
        "TransformJobSummaries"])
    second = pipeline.start()
    second.wait(delay=1, max_attempts=600)
    steps = {step["StepName"]: step for step in second.list_steps()}
    assert steps["ScoreFixed"]["StepStatus"] == "Succeeded"
    assert steps["ScoreFixed"]["CacheHitResult"]["SourcePipelineExecutionArn"] == first.arn
    assert "CacheHitResult" not in steps["Score"]  # its model is a new one each run
    assert len(client.list_transform_jobs(NameContains="pipelines-", MaxResults=100)[
        "TransformJobSummaries"]) == jobs_before + 1
