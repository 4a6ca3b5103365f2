"""Script mode as the framework containers run it: the framework version's own libraries,
network isolation's code channel, entry points named as modules.

The framework-environment tests download wheels from PyPI the first time (uv caches them);
they skip, saying so, when PyPI cannot be reached.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import urllib.request

import pytest

from jobs_helpers import SKLEARN_IMAGE, sdk_session, wait_for_status
from server_process import ServerProcess

LOG_GROUP = "/aws/sagemaker/TrainingJobs"

# Runs on scikit-learn 1.2.1; fails on 1.9, which removed LassoCV's n_alphas and
# ClassifierChain's base_estimator (both deprecated in 1.7, removed in 1.9).
OLD_SKLEARN_SCRIPT = """
import json, os, sys
import numpy, sklearn
from sklearn.linear_model import LassoCV, LogisticRegression
from sklearn.multioutput import ClassifierChain

X = numpy.arange(40, dtype=float).reshape(20, 2)
y = X[:, 0] * 0.5 + 1.0
lasso = LassoCV(n_alphas=5, cv=2).fit(X, y)
chain = ClassifierChain(base_estimator=LogisticRegression()).fit(X, numpy.c_[X[:, 0] > 10, X[:, 1] > 20])
with open(os.path.join(os.environ["SM_MODEL_DIR"], "versions.json"), "w") as handle:
    json.dump({"sklearn": sklearn.__version__, "numpy": numpy.__version__,
               "python": sys.executable, "alphas": len(lasso.alphas_)}, handle)
print("old API ran on scikit-learn", sklearn.__version__)
"""

VERSIONS_SCRIPT = """
import json, os, sys
import numpy, sklearn
with open(os.path.join(os.environ["SM_MODEL_DIR"], "versions.json"), "w") as handle:
    json.dump({"sklearn": sklearn.__version__, "numpy": numpy.__version__, "argv": sys.argv[1:]}, handle)
print("ran as", __name__, "on scikit-learn", sklearn.__version__)
"""


def pypi_reachable() -> bool:
    index = os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or "https://pypi.org/simple"
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/scikit-learn/", timeout=15) as response:
            return response.status == 200
    except OSError:
        return False


needs_pypi = pytest.mark.skipif(not pypi_reachable(), reason=(
    "PyPI is unreachable: framework environments are built from its wheels on first use"))


def job_log(server: ServerProcess, job_name: str) -> str:
    logs = server.client("logs")
    events = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNamePrefix=job_name)["events"]
    return "\n".join(event["message"] for event in events)


def model_files(server: ServerProcess, description: dict) -> dict[str, bytes]:
    bucket, _, key = description["ModelArtifacts"]["S3ModelArtifacts"][len("s3://"):].partition("/")
    data = server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def sklearn_estimator(session, unique_name: str, **options):
    from sagemaker import get_execution_role
    from sagemaker.sklearn.estimator import SKLearn

    bucket = session.default_bucket()
    return SKLearn(role=get_execution_role(session), instance_count=1, instance_type="ml.m5.large",
                   output_path=f"s3://{bucket}/{unique_name}/models", sagemaker_session=session,
                   code_location=f"s3://{bucket}/{unique_name}/code", **options)


def upload_source_tarball(server, session, key: str, files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    bucket = session.default_bucket()
    server.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return f"s3://{bucket}/{key}"


# ---------------------------------------------------------------- framework versions


@needs_pypi
def test_sklearn_1_2_1_script_using_apis_removed_in_1_9_runs_on_its_framework_version(
        server, unique_name, tmp_path):
    session = sdk_session()
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(OLD_SKLEARN_SCRIPT)
    estimator = sklearn_estimator(session, unique_name, entry_point="train.py", source_dir=str(source),
                                  framework_version="1.2-1")

    estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    versions = json.loads(model_files(server, description)["versions.json"])
    assert versions["sklearn"] == "1.2.1"
    assert int(versions["numpy"].split(".")[0]) < 2
    assert versions["alphas"] == 5
    log = job_log(server, description["TrainingJobName"])
    # The first job on a machine builds the environment; later ones name the one they reuse.
    assert "the sklearn 1.2-1 environment" in log
    assert "scikit-learn==1.2.1" in log
    assert "old API ran on scikit-learn 1.2.1" in log


@needs_pypi
def test_requirements_are_layered_on_the_framework_environment(server, unique_name, tmp_path):
    session = sdk_session()
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(VERSIONS_SCRIPT)
    # Satisfied by the framework environment's joblib: pip needs no index, and the job's
    # private environment must still see scikit-learn 1.2.1, not the server's.
    (source / "requirements.txt").write_text("joblib\n")
    estimator = sklearn_estimator(session, unique_name, entry_point="train.py", source_dir=str(source),
                                  framework_version="1.2-1")

    estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert json.loads(model_files(server, description)["versions.json"])["sklearn"] == "1.2.1"
    log = job_log(server, description["TrainingJobName"])
    assert "Requirement already satisfied: joblib" in log
    assert "/venv/bin/python train.py" in log


@needs_pypi
def test_xgboost_framework_version_runs_on_its_xgboost(server, unique_name, tmp_path):
    from sagemaker import get_execution_role
    from sagemaker.xgboost import XGBoost

    session = sdk_session()
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(
        "import json, os, xgboost\n"
        "json.dump({'xgboost': xgboost.__version__},"
        " open(os.path.join(os.environ['SM_MODEL_DIR'], 'versions.json'), 'w'))\n")
    bucket = session.default_bucket()
    estimator = XGBoost(entry_point="train.py", source_dir=str(source), framework_version="1.7-1",
                        role=get_execution_role(session), instance_count=1, instance_type="ml.m5.large",
                        output_path=f"s3://{bucket}/{unique_name}/models", sagemaker_session=session,
                        code_location=f"s3://{bucket}/{unique_name}/code")

    estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert json.loads(model_files(server, description)["versions.json"])["xgboost"].startswith("1.7.")
    assert "the xgboost 1.7-1 environment" in job_log(server, description["TrainingJobName"])


def training_request(name: str, bucket: str, source_uri: str, image: str = SKLEARN_IMAGE) -> dict:
    """CreateTrainingJob as the SKLearn estimator sends it."""
    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": json.dumps("train.py"),
                            "sagemaker_submit_directory": json.dumps(source_uri),
                            "sagemaker_region": json.dumps("us-east-1")},
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{name}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
    }


@pytest.fixture()
def private_cache_server(tmp_path):
    """A server with an empty framework-environment cache of its own (under /tmp, so the
    sandbox must bind it in)."""
    server = ServerProcess.start(tmp_path / "data", MODELYARD_FRAMEWORK_ENVS_DIR=str(tmp_path / "envs"))
    yield server
    server.stop()


@needs_pypi
def test_concurrent_jobs_build_a_framework_environment_once_and_reuse_it(private_cache_server, tmp_path):
    server = private_cache_server
    s3, sagemaker_client = server.client("s3"), server.client("sagemaker")
    s3.create_bucket(Bucket="fw-envs")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = VERSIONS_SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket="fw-envs", Key="code/sourcedir.tar.gz", Body=buffer.getvalue())
    names = ["fw-env-first", "fw-env-second"]

    for name in names:  # two job slots on this machine: both start at once
        sagemaker_client.create_training_job(**training_request(name, "fw-envs", "s3://fw-envs/code/sourcedir.tar.gz"))
    jobs = [wait_for_status(lambda name=name: sagemaker_client.describe_training_job(TrainingJobName=name),
                            "TrainingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=900)
            for name in names]

    assert [job["TrainingJobStatus"] for job in jobs] == ["Completed", "Completed"], \
        [job.get("FailureReason") for job in jobs]
    logs = [job_log(server, name) for name in names]
    assert sum("building the sklearn 1.2-1 environment with uv" in log for log in logs) == 1, logs
    assert all("running on the sklearn 1.2-1 environment" in log for log in logs)
    envs = [path for path in (tmp_path / "envs").iterdir() if not path.name.startswith(".")]
    assert len(envs) == 1 and (envs[0] / "modelyard-env.json").is_file()
    assert not list((tmp_path / "envs").glob(".build-*"))  # no half-built leftovers
    for job in jobs:
        versions = json.loads(model_files(server, job)["versions.json"])
        assert versions["sklearn"] == "1.2.1"

    sagemaker_client.create_training_job(**training_request("fw-env-third", "fw-envs",
                                                            "s3://fw-envs/code/sourcedir.tar.gz"))
    third = wait_for_status(lambda: sagemaker_client.describe_training_job(TrainingJobName="fw-env-third"),
                            "TrainingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=300)
    assert third["TrainingJobStatus"] == "Completed", third.get("FailureReason")
    third_log = job_log(server, "fw-env-third")
    assert "building" not in third_log and "running on the sklearn 1.2-1 environment" in third_log


def test_framework_version_without_wheels_falls_back_to_the_servers_libraries_with_a_warning(
        server, unique_name, tmp_path):
    import sklearn

    session = sdk_session()
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(VERSIONS_SCRIPT)
    # scikit-learn 1.0.2 has no wheels for Python 3.11 (nor does anything without network).
    estimator = sklearn_estimator(session, unique_name, entry_point="train.py", source_dir=str(source),
                                  framework_version="1.0-1")

    estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert json.loads(model_files(server, description)["versions.json"])["sklearn"] == sklearn.__version__
    log = job_log(server, description["TrainingJobName"])
    assert "WARNING: cannot build the sklearn 1.0-1 environment" in log
    assert "runs on modelyard's own library versions instead" in log


def test_framework_environments_can_be_turned_off(tmp_path):
    import sklearn

    server = ServerProcess.start(tmp_path / "data", MODELYARD_FRAMEWORK_ENVS="off",
                                 MODELYARD_FRAMEWORK_ENVS_DIR=str(tmp_path / "envs"))
    try:
        s3, sagemaker_client = server.client("s3"), server.client("sagemaker")
        s3.create_bucket(Bucket="fw-off")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            data = VERSIONS_SCRIPT.encode()
            info = tarfile.TarInfo("train.py")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        s3.put_object(Bucket="fw-off", Key="code/sourcedir.tar.gz", Body=buffer.getvalue())
        sagemaker_client.create_training_job(**training_request("fw-off", "fw-off",
                                                                "s3://fw-off/code/sourcedir.tar.gz"))
        job = wait_for_status(lambda: sagemaker_client.describe_training_job(TrainingJobName="fw-off"),
                              "TrainingJobStatus", {"Completed", "Failed", "Stopped"})
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        assert json.loads(model_files(server, job)["versions.json"])["sklearn"] == sklearn.__version__
        assert "sklearn 1.2-1 environment" not in job_log(server, "fw-off")
        assert not (tmp_path / "envs").exists()
    finally:
        server.stop()


# ---------------------------------------------------------------- code and entry points


def test_network_isolation_runs_the_code_from_the_code_channel(server, unique_name, tmp_path):
    session = sdk_session()
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(VERSIONS_SCRIPT)
    (source / "helper.py").write_text("VALUE = 1\n")
    estimator = sklearn_estimator(session, unique_name, entry_point="train.py", source_dir=str(source),
                                  framework_version="1.2-1", enable_network_isolation=True,
                                  hyperparameters={"depth": 3})

    estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert description["EnableNetworkIsolation"] is True
    # What the SDK sent: the code as a channel, a container path as the submit directory.
    assert [channel["ChannelName"] for channel in description["InputDataConfig"]] == ["code"]
    assert json.loads(description["HyperParameters"]["sagemaker_submit_directory"]) == \
        "/opt/ml/input/data/code/sourcedir.tar.gz"
    versions = json.loads(model_files(server, description)["versions.json"])
    assert versions["argv"] == ["--depth", "3"]
    assert "Extracted /opt/ml/input/data/code/sourcedir.tar.gz into /opt/ml/code" in \
        job_log(server, description["TrainingJobName"])


def test_entry_point_without_py_runs_as_a_module(server, unique_name):
    session = sdk_session()
    # With an S3 source_dir the SDK passes entry_point as given; the container runs
    # "python -m train" for the train.py inside.
    source_uri = upload_source_tarball(server, session, f"{unique_name}/source/sourcedir.tar.gz",
                                       {"train.py": VERSIONS_SCRIPT, "helper.py": "VALUE = 1\n"})
    estimator = sklearn_estimator(session, unique_name, entry_point="train", source_dir=source_uri,
                                  framework_version="1.2-1", hyperparameters={"depth": 3})

    estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert json.loads(description["HyperParameters"]["sagemaker_program"]) == "train"
    versions = json.loads(model_files(server, description)["versions.json"])
    assert versions["argv"] == ["--depth", "3"]
    log = job_log(server, description["TrainingJobName"])
    assert "ran as __main__" in log
    assert "-m train --depth 3" in log


def test_entry_point_that_is_neither_a_file_nor_a_module_fails_clearly(server, unique_name):
    session = sdk_session()
    source_uri = upload_source_tarball(server, session, f"{unique_name}/source/sourcedir.tar.gz",
                                       {"train.py": VERSIONS_SCRIPT})
    estimator = sklearn_estimator(session, unique_name, entry_point="fit", source_dir=source_uri,
                                  framework_version="1.2-1")

    with pytest.raises(Exception):
        estimator.fit(logs=False)

    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Failed"
    assert "Entry point fit is not in the code directory" in description["FailureReason"]
    assert "nor a module fit.py to run with python -m" in description["FailureReason"]
    assert "train.py" in description["FailureReason"]
