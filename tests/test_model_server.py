"""The model server of an endpoint instance, started as a process and called over HTTP.

Models are real: BlazingText comes out of a training job run by the modelyard server,
the others are trained here and laid out as the training runtimes lay them out. Every
prediction is compared with what the library returns for the same model file.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import requests

from jobs_helpers import fasttext_lines, wait_for_status
from modelyard.runtimes.model_server import READY_LINE

TICKETS = ["my vpn drops every hour", "paper jam in tray two again", "the monitor flickers on hdmi"]


class ModelServer:
    """``python -m modelyard.runtimes.model_server`` on a port the system picks (no race with
    other tests for a free one), as a controller starts it; its URL is read from its ready
    line."""

    def __init__(self, framework: str, model_dir: Path, log_dir: Path, *args: str, **env: str) -> None:
        stem = f"model-server-{len(list(log_dir.glob('model-server-*.log')))}"
        self.log_path = log_dir / f"{stem}.log"
        self.err_path = log_dir / f"{stem}.err"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelyard.runtimes.model_server", "--framework", framework,
             "--model-dir", str(model_dir), *args],
            env={**os.environ, "SAGEMAKER_BIND_TO_PORT": "0", **env},
            stdout=open(self.log_path, "wb"), stderr=open(self.err_path, "wb"))
        self.url = ""
        self.port = 0
        self.http = requests.Session()

    def wait_ready(self, timeout: float = 120) -> "ModelServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"model server exited {self.process.returncode}: {self.stderr()}")
            ready = [line for line in self.log_path.read_text(errors="replace").splitlines()
                     if line.startswith(READY_LINE)]
            if ready:
                self.url = ready[0].split()[-1]
                self.port = int(self.url.rsplit(":", 1)[1])
                if self.http.get(f"{self.url}/ping", timeout=10).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"/ping did not pass in {timeout}s: {self.stderr()}")

    def wait_exit(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def invoke(self, body: bytes | str, content_type: str, accept: str | None = None) -> requests.Response:
        headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
        data = body.encode() if isinstance(body, str) else body
        return self.http.post(f"{self.url}/invocations", data=data, headers=headers, timeout=60)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)


@pytest.fixture()
def start(tmp_path):
    servers: list[ModelServer] = []

    def starter(framework: str, model_dir: Path, *args: str, **env: str) -> ModelServer:
        servers.append(ModelServer(framework, model_dir, tmp_path, *args, **env))
        return servers[-1]

    yield starter
    for server in servers:
        assert server.stop() in (0, 1), server.stderr()  # SIGTERM ends it cleanly


# ---------------------------------------------------------------- BlazingText


def train_blazingtext(server, unique_name: str) -> bytes:
    """A real BlazingText training job through modelyard's API; returns its model.tar.gz."""
    s3, client = server.client("s3"), server.client("sagemaker")
    bucket = f"ms-{unique_name}"[:63]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="train/train.txt", Body=fasttext_lines(600, 1).encode())
    client.create_training_job(
        TrainingJobName=unique_name,
        RoleArn="arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        AlgorithmSpecification={"TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1",
                                "TrainingInputMode": "File"},
        HyperParameters={"mode": "supervised", "epochs": "10", "learning_rate": "0.5", "buckets": "100000"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    job = wait_for_status(lambda: client.describe_training_job(TrainingJobName=unique_name),
                          "TrainingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=300)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_blazingtext_model_from_a_training_job_serves_what_fasttext_predicts(server, unique_name, tmp_path, start):
    import fasttext

    model_dir = tmp_path / "model"
    with tarfile.open(fileobj=io.BytesIO(train_blazingtext(server, unique_name)), mode="r:gz") as archive:
        archive.extractall(model_dir, filter="data")  # what the controller does before starting it
    model = fasttext.load_model(str(model_dir / "model.bin"))
    served = start("blazingtext", model_dir).wait_ready()

    answer = served.invoke(json.dumps({"instances": TICKETS, "configuration": {"k": 2}}), "application/json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    labels, probabilities = model.predict(TICKETS, k=2)
    assert answer.json() == [{"label": list(label), "prob": [float(p) for p in prob]}
                             for label, prob in zip(labels, probabilities)]
    assert [entry["label"][0] for entry in answer.json()] == [
        "__label__network", "__label__printer", "__label__screen"]

    default_k = served.invoke(json.dumps({"instances": TICKETS[:1]}), "application/json").json()
    assert len(default_k[0]["label"]) == 1 == len(default_k[0]["prob"])

    plain = served.invoke("\n".join(TICKETS) + "\n", "text/plain")
    labels, probabilities = model.predict(TICKETS, k=1)
    assert plain.json() == [{"label": list(label), "prob": [float(p) for p in prob]}
                            for label, prob in zip(labels, probabilities)]

    lines = served.invoke(f'{{"source": "{TICKETS[0]}", "k": 3}}\n{{"source": "{TICKETS[1]}"}}\n',
                          "application/jsonlines")
    assert lines.headers["Content-Type"] == "application/jsonlines"
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert [len(record["label"]) for record in records] == [3, 1]
    assert records[0]["label"] == list(model.predict(TICKETS[0], k=3)[0])

    for body, content_type, status, words in [
        ("{not json", "application/json", 400, "not valid JSON"),
        (json.dumps({"texts": TICKETS}), "application/json", 400, '"instances"'),
        (json.dumps({"instances": [1, 2]}), "application/json", 400, "instances[0]"),
        (json.dumps({"instances": TICKETS, "configuration": {"k": 0}}), "application/json", 400, "configuration.k"),
        ("a,b", "text/csv", 415, "application/json"),
    ]:
        refused = served.invoke(body, content_type)
        assert (refused.status_code, words in refused.text) == (status, True), refused.text
    assert served.http.get(f"{served.url}/invocations").status_code == 405


# ---------------------------------------------------------------- XGBoost algorithm


@pytest.fixture()
def xgboost_model(tmp_path):
    """A booster saved the way runtimes.xgboost_algorithm saves it, plus its test rows."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.RandomState(0)
    features = rng.rand(300, 4).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > 1).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(features, label=labels), 20)
    model_dir = tmp_path / "xgboost-model-dir"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model.ubj"))
    os.replace(model_dir / "xgboost-model.ubj", model_dir / "xgboost-model")
    rows = features[:5]
    loaded = xgb.Booster()
    loaded.load_model(bytearray((model_dir / "xgboost-model").read_bytes()))  # the served file
    return model_dir, rows, loaded.predict(xgb.DMatrix(rows)).tolist()


def test_xgboost_algorithm_answers_like_the_container(xgboost_model, start):
    model_dir, rows, expected = xgboost_model
    served = start("xgboost", model_dir).wait_ready()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)

    answer = served.invoke(csv_rows, "text/csv")  # no Accept: text/csv, one prediction per line
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/csv"
    assert [float(line) for line in answer.text.splitlines()] == expected
    assert answer.text.endswith("\n")

    as_json = served.invoke(csv_rows, "text/csv", accept="application/json")
    assert as_json.json() == {"predictions": [{"score": value} for value in expected]}
    as_lines = served.invoke(csv_rows, "text/csv", accept="application/jsonlines")
    assert [json.loads(line) for line in as_lines.text.splitlines()] == [{"score": v} for v in expected]

    libsvm = "\n".join("1 " + " ".join(f"{i}:{float(v)!r}" for i, v in enumerate(row)) for row in rows)
    assert served.invoke(libsvm, "text/libsvm", accept="application/json").json()["predictions"] == \
        [{"score": value} for value in expected]
    rows_json = json.dumps({"instances": [[float(v) for v in row] for row in rows]})
    assert [float(x) for x in served.invoke(rows_json, "application/json").text.split()] == expected

    for body, content_type, accept, status, words in [
        ("\x0a\x0b", "application/x-recordio-protobuf", None, 415, "recordio-protobuf is not supported"),
        ("<rows/>", "application/xml", None, 415, "text/csv"),
        (csv_rows, "text/csv", "application/xml", 406, "Accept type application/xml"),
        ("0.1,abc,0.3,0.4", "text/csv", None, 400, "could not convert"),
        ("0.1,0.2\n0.1,0.2,0.3", "text/csv", None, 400, "different numbers of columns"),
        ("0.1,0.2,0.3,0.4,0.5,0.6,0.7", "text/csv", None, 400, "Unable to evaluate payload"),
        ("1 0:x", "text/libsvm", None, 400, "libsvm"),
    ]:
        refused = served.invoke(body, content_type, accept)
        assert (refused.status_code, words in refused.text) == (status, True), refused.text
    assert served.invoke(b"", "text/csv").status_code == 204
    parameters = served.http.get(f"{served.url}/execution-parameters").json()
    assert parameters["BatchStrategy"] == "MULTI_RECORD"


def test_http_keep_alive_pipelining_and_payload_limit(xgboost_model, start):
    model_dir, rows, expected = xgboost_model
    served = start("xgboost", model_dir, MODELYARD_MAX_PAYLOAD_BYTES="1000").wait_ready()
    body = ",".join(repr(float(v)) for v in rows[0]).encode()
    request = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(request * 3)  # pipelined on one connection: three answers, in order
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 3 or not received.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert received.count(f"\r\n\r\n{expected[0]!r}\n".encode()) == 3
    too_large = served.invoke("1," * 600, "text/csv")
    assert too_large.status_code == 413 and "exceeds the limit" in too_large.text


def test_xgboost_multiclass_probabilities_are_one_row_per_record(tmp_path, start):
    import numpy as np
    import xgboost as xgb

    rng = np.random.RandomState(2)
    features = rng.rand(150, 3).astype(np.float32)
    labels = np.digitize(features[:, 0], [0.33, 0.66])
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
                        xgb.DMatrix(features, label=labels), 10)
    model_dir = tmp_path / "multiclass"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model.ubj"))
    os.replace(model_dir / "xgboost-model.ubj", model_dir / "xgboost-model")
    expected = booster.predict(xgb.DMatrix(features[:4])).tolist()
    served = start("xgboost", model_dir).wait_ready()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in features[:4])
    answer = served.invoke(csv_rows, "text/csv")
    assert [[float(v) for v in line.split(",")] for line in answer.text.splitlines()] == expected
    as_json = served.invoke(csv_rows, "text/csv", accept="application/json").json()
    assert as_json == {"predictions": [{"score": row} for row in expected]}


def test_selectable_inference_output(xgboost_model, start):
    model_dir, rows, expected = xgboost_model
    served = start("xgboost", model_dir, SAGEMAKER_INFERENCE_OUTPUT="predicted_label, probabilities,raw_score,"
                                                                    "predicted_score").wait_ready()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    records = served.invoke(csv_rows, "text/csv", accept="application/json").json()["predictions"]
    assert records[0]["predicted_score"] != records[0]["predicted_score"]  # NaN: not a binary:logistic key
    assert [{k: v for k, v in record.items() if k != "predicted_score"} for record in records] == [
        {"predicted_label": int(p > 0.5), "probabilities": [1.0 - p, p], "raw_score": p} for p in expected]
    lines = served.invoke(csv_rows, "text/csv").text.splitlines()
    assert lines[0] == f'{int(expected[0] > 0.5)},"{[1.0 - expected[0], expected[0]]}",{expected[0]},nan'


def test_batch_mode_writes_one_prediction_per_line_whatever_the_accept(xgboost_model, start):
    model_dir, rows, expected = xgboost_model
    served = start("xgboost", model_dir, SAGEMAKER_BATCH="true").wait_ready()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    answer = served.invoke(csv_rows, "text/csv", accept="application/json")
    assert answer.text == "".join(f"{value!r}\n" for value in expected)


def test_the_model_server_runs_in_the_job_sandbox(xgboost_model, tmp_path):
    """As an endpoint instance will: /opt/ml is the instance's own directory, defaults only."""
    import shutil

    from modelyard.engine.sandbox import Sandbox, check_sandbox_support, start_in_sandbox, terminate
    from modelyard.runtimes.model_server import serve_command

    reason = check_sandbox_support()
    if reason:
        pytest.skip(reason)
    model_dir, rows, expected = xgboost_model
    sandbox = Sandbox(tmp_path / "instance")
    sandbox.create(["model", "code"])
    shutil.copy(model_dir / "xgboost-model", sandbox.host_path("model/xgboost-model"))
    hidden = tmp_path / "data-dir"
    hidden.mkdir()
    process = start_in_sandbox(sandbox, hidden, "/opt/ml", serve_command("xgboost"),
                               {**os.environ, "SAGEMAKER_BIND_TO_PORT": "0"})  # port 0: it picks one
    try:
        assert process.stdout is not None
        lines = []
        for raw in iter(process.stdout.readline, b""):  # the ready line comes once /ping passes
            lines.append(raw.decode())
            if lines[-1].startswith(READY_LINE):
                break
        assert lines and lines[-1].startswith(f"{READY_LINE} http://127.0.0.1:"), lines
        assert "Loading the xgboost model from /opt/ml/model" in lines[0]
        url = lines[-1].split()[-1]
        assert requests.get(f"{url}/ping", timeout=10).status_code == 200
        answer = requests.post(f"{url}/invocations", timeout=60, headers={
            "Content-Type": "text/csv"}, data=",".join(repr(float(v)) for v in rows[0]))
        assert float(answer.text) == expected[0]
    finally:
        terminate(process, grace_seconds=30)
    assert process.returncode == 0


# ---------------------------------------------------------------- framework script mode


SKLEARN_DEFAULTS = """
import os, joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

SKLEARN_CUSTOM = """
import json, os, joblib, numpy

def model_fn(model_dir, context):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError("only JSON, please")
    return numpy.array(json.loads(body)["features"])

def predict_fn(data, model):
    if (data < 0).any():
        raise ValueError("features must not be negative")
    return model.predict_proba(data)

def output_fn(prediction, accept):
    return json.dumps({"probabilities": prediction.tolist()}), "application/vnd.custom+json"
"""

SKLEARN_TRANSFORM = """
import os, joblib, numpy

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def transform_fn(model, body, content_type, accept):
    rows = numpy.array([[float(v) for v in line.split(",")] for line in body.splitlines()])
    return ",".join(str(label) for label in model.predict(rows))
"""


@pytest.fixture()
def sklearn_model(tmp_path):
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(1)
    features = rng.rand(200, 3)
    labels = (features.sum(axis=1) > 1.5).astype(int) + (features[:, 0] > 0.8).astype(int)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    model_dir = tmp_path / "sklearn-model"
    model_dir.mkdir()
    joblib.dump(model, model_dir / "model.joblib")
    return model_dir, model, rng.rand(6, 3)


def write_code(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "inference.py").write_text(source)
    return directory


def test_sklearn_entry_point_with_the_default_handlers(sklearn_model, start):
    import numpy as np

    model_dir, model, rows = sklearn_model
    write_code(model_dir / "code", SKLEARN_DEFAULTS)  # where the SDK's repack puts it
    served = start("sklearn", model_dir, SAGEMAKER_PROGRAM="inference.py",
                   SAGEMAKER_SUBMIT_DIRECTORY="/opt/ml/model/code").wait_ready()

    buffer = io.BytesIO()
    np.save(buffer, rows)
    answer = served.invoke(buffer.getvalue(), "application/x-npy", accept="application/x-npy")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/x-npy"
    assert np.load(io.BytesIO(answer.content)).tolist() == model.predict(rows).tolist()

    as_json = served.invoke(json.dumps(rows.tolist()), "application/json")  # default Accept: JSON
    assert as_json.json() == model.predict(rows.astype(np.float32)).tolist()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    as_csv = served.invoke(csv_rows, "text/csv", accept="text/csv")
    assert as_csv.text.split() == [str(v) for v in model.predict(rows.astype(np.float32))]

    for body, content_type, accept, status, words in [
        ("<x/>", "application/xml", None, 415, "application/xml is not supported"),
        (json.dumps(rows.tolist()), "application/json", "application/xml", 406, "Accept type application/xml"),
        ("[[1, 2", "application/json", None, 400, "application/json"),
    ]:
        refused = served.invoke(body, content_type, accept)
        assert (refused.status_code, words in refused.text) == (status, True), refused.text


def test_sklearn_entry_point_functions_and_a_model_that_raises(sklearn_model, tmp_path, start):
    model_dir, model, rows = sklearn_model
    code_dir = write_code(tmp_path / "extracted-sourcedir", SKLEARN_CUSTOM)  # s3:// code, extracted
    served = start("sklearn", model_dir, "--code-dir", str(code_dir), SAGEMAKER_PROGRAM="inference.py",
                   SAGEMAKER_SUBMIT_DIRECTORY="s3://bucket/code/sourcedir.tar.gz").wait_ready()

    answer = served.invoke(json.dumps({"features": rows.tolist()}), "application/json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/vnd.custom+json"
    assert answer.json() == {"probabilities": model.predict_proba(rows).tolist()}

    failed = served.invoke(json.dumps({"features": [[-1.0, 0.2, 0.3]]}), "application/json")
    assert failed.status_code == 500
    assert failed.text == "ValueError: features must not be negative"
    assert "features must not be negative" in served.stderr()  # the traceback reaches the log
    assert served.invoke("1,2,3", "text/csv").status_code == 500  # the user's input_fn refused it


def test_sklearn_transform_fn(sklearn_model, start):
    model_dir, model, rows = sklearn_model
    write_code(model_dir / "code", SKLEARN_TRANSFORM)
    served = start("sklearn", model_dir, SAGEMAKER_PROGRAM="inference.py").wait_ready()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    answer = served.invoke(csv_rows, "text/csv", accept="text/csv")
    assert (answer.status_code, answer.headers["Content-Type"]) == (200, "text/csv")
    assert answer.text == ",".join(str(label) for label in model.predict(rows))


def test_xgboost_framework_entry_point_uses_the_default_csv_input(xgboost_model, start):
    model_dir, rows, expected = xgboost_model
    write_code(model_dir / "code", "import os, xgboost\n\ndef model_fn(model_dir):\n"
                                   "    return xgboost.Booster(model_file=os.path.join(model_dir, 'xgboost-model'))\n")
    served = start("xgboost", model_dir, SAGEMAKER_PROGRAM="inference.py",
                   SAGEMAKER_SUBMIT_DIRECTORY="/opt/ml/model/code").wait_ready()
    csv_rows = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    assert served.invoke(csv_rows, "text/csv").json() == expected  # default Accept: JSON
    assert served.invoke("[1]", "application/json").status_code == 415


# ---------------------------------------------------------------- load failures


@pytest.mark.parametrize("framework,files,env,words", [
    ("blazingtext", {}, {}, "model.bin is not in the model directory"),
    ("blazingtext", {"model.bin": "not a model"}, {}, "not a fastText model"),
    ("xgboost", {"xgboost-model": "garbage"}, {}, "not an XGBoost model"),
    ("xgboost", {}, {}, "No XGBoost model"),
    ("sklearn", {"code/inference.py": "X = 1\n"}, {"SAGEMAKER_PROGRAM": "inference.py"}, "no model_fn"),
    ("sklearn", {"code/inference.py": "def model_fn(d):\n    raise OSError('weights missing')\n"},
     {"SAGEMAKER_PROGRAM": "inference.py"}, "model_fn in inference.py failed: OSError: weights missing"),
    ("sklearn", {"code/inference.py": "import not_a_module_anywhere\n"},
     {"SAGEMAKER_PROGRAM": "inference.py"}, "No module named 'not_a_module_anywhere'"),
    ("sklearn", {"code/other.py": ""}, {"SAGEMAKER_PROGRAM": "serve.py"}, "serve.py (SAGEMAKER_PROGRAM) is not in"),
    ("sklearn", {"code/inference.py": "def model_fn(d): pass\ndef transform_fn(*a): pass\ndef input_fn(*a): pass\n"},
     {"SAGEMAKER_PROGRAM": "inference.py"}, "Cannot use transform_fn"),
])
def test_a_model_that_cannot_load_exits_non_zero_with_the_reason(tmp_path, start, framework, files, env, words):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name, text in files.items():
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / name).write_text(text)
    served = start(framework, model_dir, **env)
    assert served.wait_exit() == 1
    last_line = served.stderr().strip().splitlines()[-1]
    assert last_line.startswith("ModelError: ") and words in last_line, served.stderr()
    assert READY_LINE not in served.log_path.read_text()  # it never listened
