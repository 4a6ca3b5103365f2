"""Training jobs really run: built-in BlazingText and XGBoost, scikit-learn script mode."""

from __future__ import annotations

import io
import random
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import fasttext_lines, sdk_session, wait_for_status
from server_process import ServerProcess

REGION = "us-east-1"


def read_tarball(s3, uri: str) -> dict[str, bytes]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {member.name: archive.extractfile(member).read()
                for member in archive.getmembers() if member.isfile()}


def final_metrics(description: dict) -> dict[str, float]:
    return {item["MetricName"]: item["Value"] for item in description.get("FinalMetricDataList", [])}


@pytest.fixture()
def session(server):
    return sdk_session()


def test_blazingtext_supervised_trains_streams_logs_and_reports_accuracy(
        server, session, unique_name, tmp_path, capsys):
    import fasttext
    from sagemaker import get_execution_role, image_uris
    from sagemaker.estimator import Estimator

    bucket = session.default_bucket()
    train_uri = session.upload_string_as_file_body(
        fasttext_lines(600, 1), bucket, f"{unique_name}/train/train.txt")
    validation_uri = session.upload_string_as_file_body(
        fasttext_lines(90, 2), bucket, f"{unique_name}/validation/validation.txt")
    estimator = Estimator(
        image_uri=image_uris.retrieve("blazingtext", REGION, "latest"),
        role=get_execution_role(session), instance_count=1, instance_type="ml.c5.xlarge",
        output_path=f"s3://{bucket}/{unique_name}/models", sagemaker_session=session,
        hyperparameters={"mode": "supervised", "epochs": 10, "learning_rate": 0.5,
                         "word_ngrams": 2, "buckets": 100000},
        metric_definitions=[{"Name": "validation:accuracy",
                             "Regex": "validation_accuracy: ([0-9.]+)"}],
    )
    estimator.fit({"train": train_uri.rsplit("/", 1)[0],
                   "validation": validation_uri.rsplit("/", 1)[0]}, logs=True)
    printed = capsys.readouterr().out
    assert "#validation_accuracy" in printed  # the job's log lines reached the SDK

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed"
    assert description["SecondaryStatus"] == "Completed"
    assert [item["Status"] for item in description["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert description["BillableTimeInSeconds"] >= 1
    assert final_metrics(description)["validation:accuracy"] > 0.8
    model_uri = description["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{bucket}/{unique_name}/models/{description['TrainingJobName']}/output/model.tar.gz"
    files = read_tarball(server.client("s3"), model_uri)
    (tmp_path / "model.bin").write_bytes(files["model.bin"])
    model = fasttext.load_model(str(tmp_path / "model.bin"))
    labels, _ = model.predict("router dhcp lease not working")
    assert labels[0] == "__label__network"


def test_xgboost_builtin_algorithm_on_breast_cancer(server, session, unique_name, tmp_path):
    import numpy
    import xgboost
    from sagemaker import get_execution_role, image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(features, labels, test_size=0.25,
                                                      random_state=0)
    bucket = session.default_bucket()
    uris = {}
    for channel, x, y in (("train", x_train, y_train), ("validation", x_val, y_val)):
        rows = numpy.column_stack([y, x])  # label first, no header
        text = "\n".join(",".join(f"{value:g}" for value in row) for row in rows) + "\n"
        uris[channel] = session.upload_string_as_file_body(
            text, bucket, f"{unique_name}/{channel}/data.csv").rsplit("/", 1)[0]
    estimator = Estimator(
        image_uri=image_uris.retrieve("xgboost", REGION, "1.7-1"),
        role=get_execution_role(session), instance_count=1, instance_type="ml.m5.xlarge",
        output_path=f"s3://{bucket}/{unique_name}/models", sagemaker_session=session,
        hyperparameters={"objective": "binary:logistic", "num_round": 40, "max_depth": 3,
                         "eta": 0.3, "eval_metric": "auc"},
    )
    estimator.fit({channel: TrainingInput(uri, content_type="text/csv")
                   for channel, uri in uris.items()}, logs=False)
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed"
    metrics = final_metrics(description)
    assert metrics["validation:auc"] > 0.95
    assert metrics["train:auc"] >= metrics["validation:auc"] - 0.05
    files = read_tarball(server.client("s3"), description["ModelArtifacts"]["S3ModelArtifacts"])
    (tmp_path / "xgboost-model").write_bytes(files["xgboost-model"])
    booster = xgboost.Booster(model_file=str(tmp_path / "xgboost-model"))
    predictions = booster.predict(xgboost.DMatrix(x_val))
    accuracy = ((predictions > 0.5) == y_val).mean()
    assert accuracy > 0.9


TRAIN_SCRIPT = """
import argparse, os, joblib, pandas
from sklearn.ensemble import RandomForestClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int, default=10)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args = parser.parse_args()
frame = pandas.read_csv(os.path.join(args.train, "train.csv"))
model = RandomForestClassifier(n_estimators=args.n_estimators, random_state=0)
model.fit(frame[["x1", "x2"]], frame["label"])
joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "summary.txt"), "w") as handle:
    handle.write(f"trees={len(model.estimators_)} predictions={[int(p) for p in model.predict([[0.9, 0.9], [0.05, 0.1]])]}")
print(f"trained {len(model.estimators_)} trees on {len(frame)} rows")
"""


def test_sklearn_script_mode_with_source_dir(server, session, unique_name, tmp_path):
    from sagemaker import get_execution_role
    from sagemaker.sklearn.estimator import SKLearn

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN_SCRIPT)
    (source / "helper_module.py").write_text("VALUE = 1\n")
    rng = random.Random(3)
    rows = ["x1,x2,label"]
    for _ in range(200):
        x1, x2 = rng.random(), rng.random()
        rows.append(f"{x1:.4f},{x2:.4f},{int(x1 + x2 > 1)}")
    bucket = session.default_bucket()
    train_uri = session.upload_string_as_file_body(
        "\n".join(rows) + "\n", bucket, f"{unique_name}/train/train.csv").rsplit("/", 1)[0]
    estimator = SKLearn(
        entry_point="train.py", source_dir=str(source), framework_version="1.2-1",
        role=get_execution_role(session), instance_count=1, instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/{unique_name}/models", sagemaker_session=session,
        code_location=f"s3://{bucket}/{unique_name}/code",
        hyperparameters={"n-estimators": 7},
    )
    estimator.fit({"train": train_uri}, logs=False)
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    s3 = server.client("s3")
    # A scikit-learn 1.2.1 pickle (the framework version's): the script reports on it.
    assert "model.joblib" in read_tarball(s3, description["ModelArtifacts"]["S3ModelArtifacts"])
    output = read_tarball(s3, description["ModelArtifacts"]["S3ModelArtifacts"].replace(
        "model.tar.gz", "output.tar.gz"))
    assert output["summary.txt"] == b"trees=7 predictions=[1, 0]"  # the hyperparameter reached it


def training_request(name: str, bucket: str, **changes) -> dict:
    request = {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        "AlgorithmSpecification": {
            "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1",
            "TrainingInputMode": "File"},
        "HyperParameters": {"mode": "supervised"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{name}/train"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{name}/models"},
        "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    request.update(changes)
    return request


def describe(client, name):
    return lambda: client.describe_training_job(TrainingJobName=name)


def put_text(server, bucket: str, key: str, text: str) -> None:
    server.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())


def test_blazingtext_nan_fails_with_fasttexts_reason(server, session, sagemaker_client, unique_name):
    bucket = session.default_bucket()
    put_text(server, bucket, f"{unique_name}/train/train.txt", fasttext_lines(300, 4))
    sagemaker_client.create_training_job(**training_request(
        unique_name, bucket,
        HyperParameters={"mode": "supervised", "learning_rate": "1e12", "epochs": "5"}))
    job = wait_for_status(describe(sagemaker_client, unique_name), "TrainingJobStatus",
                          {"Completed", "Failed", "Stopped"})
    assert job["TrainingJobStatus"] == "Failed"
    assert "NaN" in job["FailureReason"]


SLEEPER = """
import os, time
open(os.path.join(os.environ["SM_MODEL_DIR"], "partial.txt"), "w").write("saved")
print("sleeping", flush=True)
time.sleep(int(os.environ.get("SLEEP_SECONDS", "300")))
"""


def script_job(server, bucket: str, name: str, script: str, **changes) -> dict:
    """A scikit-learn script-mode request whose source tarball is uploaded by hand."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    server.client("s3").put_object(Bucket=bucket, Key=f"{name}/source/sourcedir.tar.gz",
                                   Body=archive.getvalue())
    request = training_request(
        name, bucket,
        AlgorithmSpecification={
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/"
                             "sagemaker-scikit-learn:1.2-1-cpu-py3",
            "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": '"train.py"',
                         "sagemaker_submit_directory":
                             f'"s3://{bucket}/{name}/source/sourcedir.tar.gz"'},
        **changes,
    )
    del request["InputDataConfig"]  # these scripts read no channel
    return request


def test_failing_script_reports_its_exception(server, session, sagemaker_client, unique_name):
    request = script_job(server, session.default_bucket(), unique_name,
                         "raise RuntimeError('label column is empty')\n")
    sagemaker_client.create_training_job(**request)
    job = wait_for_status(describe(sagemaker_client, unique_name), "TrainingJobStatus",
                          {"Completed", "Failed", "Stopped"})
    assert job["TrainingJobStatus"] == "Failed"
    assert "label column is empty" in job["FailureReason"]


def test_runtime_limit_stops_the_job(server, session, sagemaker_client, unique_name):
    # Long enough for script mode to start and save under a loaded machine, far below 300 s.
    request = script_job(server, session.default_bucket(), unique_name, SLEEPER,
                         StoppingCondition={"MaxRuntimeInSeconds": 10})
    sagemaker_client.create_training_job(**request)
    job = wait_for_status(describe(sagemaker_client, unique_name), "TrainingJobStatus",
                          {"Completed", "Failed", "Stopped"}, timeout=180)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    files = read_tarball(server.client("s3"), job["ModelArtifacts"]["S3ModelArtifacts"])
    assert files["partial.txt"] == b"saved"  # what the job saved before the limit is kept


def test_stop_request_stops_training(server, session, sagemaker_client, unique_name):
    request = script_job(server, session.default_bucket(), unique_name, SLEEPER)
    sagemaker_client.create_training_job(**request)
    wait_for_status(describe(sagemaker_client, unique_name), "SecondaryStatus", {"Training"})
    sagemaker_client.stop_training_job(TrainingJobName=unique_name)
    assert describe(sagemaker_client, unique_name)()["TrainingJobStatus"] in ("Stopping", "Stopped")
    job = wait_for_status(describe(sagemaker_client, unique_name), "TrainingJobStatus",
                          {"Completed", "Failed", "Stopped"}, timeout=180)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    listed = sagemaker_client.list_training_jobs(NameContains=unique_name, StatusEquals="Stopped")
    assert [item["TrainingJobName"] for item in listed["TrainingJobSummaries"]] == [unique_name]


@pytest.mark.parametrize("changes,expected", [
    ({"AlgorithmSpecification": {
        "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:latest",
        "TrainingInputMode": "File"}}, "my-trainer"),
    ({"ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2,
                         "VolumeSizeInGB": 5}}, "InstanceCount"),
    ({"AlgorithmSpecification": {
        "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1",
        "TrainingInputMode": "Pipe"}}, "Pipe"),
])
def test_jobs_modelyard_cannot_run_are_refused(session, sagemaker_client, unique_name,
                                                changes, expected):
    request = training_request(unique_name, session.default_bucket(), **changes)
    with pytest.raises(ClientError) as raised:
        sagemaker_client.create_training_job(**request)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert expected in raised.value.response["Error"]["Message"]


def test_duplicate_name_is_refused_and_the_first_job_untouched(
        server, session, sagemaker_client, unique_name):
    request = script_job(server, session.default_bucket(), unique_name, "print('quick')\n")
    sagemaker_client.create_training_job(**request)
    with pytest.raises(ClientError) as raised:
        sagemaker_client.create_training_job(**request)
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    job = wait_for_status(describe(sagemaker_client, unique_name), "TrainingJobStatus",
                          {"Completed", "Failed", "Stopped"})
    assert job["TrainingJobStatus"] == "Completed"


def test_training_interrupted_by_a_server_kill_completes_after_restart(tmp_path):
    server = ServerProcess.start(tmp_path / "data")
    try:
        server.client("s3").create_bucket(Bucket="restart-training")
        request = script_job(server, "restart-training", "interrupted", SLEEPER,
                             Environment={"SLEEP_SECONDS": "3"})
        client = server.client("sagemaker")
        client.create_training_job(**request)
        wait_for_status(describe(client, "interrupted"), "SecondaryStatus", {"Training"})
    finally:
        server.kill()
    restarted = ServerProcess.start(tmp_path / "data", port=server.port)
    try:
        client = restarted.client("sagemaker")
        job = wait_for_status(describe(client, "interrupted"), "TrainingJobStatus",
                              {"Completed", "Failed", "Stopped"}, timeout=180)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        messages = [item["StatusMessage"] for item in job["SecondaryStatusTransitions"]]
        assert any("restarted" in message for message in messages)
    finally:
        restarted.stop()


def test_runtime_figures_are_recorded_in_order(server, session, sagemaker_client, unique_name):
    script = ("import time\nfor step in range(3):\n"
              "    print(f'step {step} loss: {1.0 / (step + 1):.3f}', flush=True)\n"
              "    time.sleep(0.6)\n")
    request = script_job(server, session.default_bucket(), unique_name, script)
    request["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "train:loss", "Regex": "loss: ([0-9.]+)"}]
    started = time.time()
    sagemaker_client.create_training_job(**request)
    job = wait_for_status(describe(sagemaker_client, unique_name), "TrainingJobStatus",
                          {"Completed", "Failed", "Stopped"})
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert final_metrics(job) == {"train:loss": pytest.approx(0.333)}
    assert job["TrainingStartTime"].timestamp() >= started - 1
    assert job["TrainingEndTime"] >= job["TrainingStartTime"]
