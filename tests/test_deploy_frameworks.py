"""Issue 8's acceptance for serving: deploy() + predict() through the SageMaker SDK answer
exactly what the library returns for the same model file (built-in XGBoost and a
scikit-learn entry point; BlazingText is in test_endpoints.py)."""

from __future__ import annotations

import io
import tarfile

import numpy
import pytest
from jobs_helpers import sdk_session

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def model_files(server, uri: str) -> dict[str, bytes]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    data = server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {member.name: archive.extractfile(member).read()
                for member in archive.getmembers() if member.isfile()}


def in_service(server, endpoint: str) -> None:
    """The SDK's own wait polls every 30 s; the waiter here polls every second."""
    server.client("sagemaker").get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


@pytest.fixture()
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True)
    return train_test_split(features, labels, test_size=0.25, random_state=0)


def test_xgboost_builtin_deploy_predicts_what_the_booster_predicts(server, unique_name, cancer,
                                                                   tmp_path):
    import xgboost
    from sagemaker import image_uris
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.serializers import CSVSerializer

    x_train, x_test, y_train, _ = cancer
    session = sdk_session()
    bucket = session.default_bucket()
    rows = numpy.column_stack([y_train, x_train])  # label first, no header
    text = "\n".join(",".join(f"{value:g}" for value in row) for row in rows) + "\n"
    train = session.upload_string_as_file_body(text, bucket, f"{unique_name}/train/data.csv")
    estimator = Estimator(
        image_uri=image_uris.retrieve("xgboost", REGION, "1.7-1"), role=ROLE,
        instance_count=1, instance_type="ml.m5.xlarge", sagemaker_session=session,
        output_path=f"s3://{bucket}/{unique_name}/models",
        hyperparameters={"objective": "binary:logistic", "num_round": 20, "max_depth": 3})
    estimator.fit({"train": TrainingInput(train.rsplit("/", 1)[0], content_type="text/csv")},
                  logs=False)

    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                 endpoint_name=unique_name, serializer=CSVSerializer(),
                                 deserializer=CSVDeserializer(), wait=False)
    in_service(server, unique_name)
    try:
        answer = predictor.predict(x_test[:40])
        served = numpy.array([float(row[0]) for row in answer])

        model_path = tmp_path / "xgboost-model"
        model_path.write_bytes(model_files(server, estimator.model_data)["xgboost-model"])
        expected = xgboost.Booster(model_file=str(model_path)).predict(
            xgboost.DMatrix(x_test[:40]))
        assert served.shape == (40,)
        numpy.testing.assert_allclose(served, expected, rtol=1e-6)
    finally:
        predictor.delete_endpoint()


ENTRY_POINT = """
import json, os
import joblib
from sklearn.linear_model import LogisticRegression


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    return model.predict_proba(data)


if __name__ == "__main__":
    import numpy
    rows = numpy.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"),
                         delimiter=",")
    model_dir = os.environ["SM_MODEL_DIR"]
    joblib.dump(LogisticRegression(max_iter=5000).fit(rows[:, 1:], rows[:, 0]),
                os.path.join(model_dir, "model.joblib"))
    # What this scikit-learn (the framework version's) answers from the saved model file.
    test = numpy.loadtxt(os.path.join(os.environ["SM_CHANNEL_TEST"], "test.csv"),
                         delimiter=",", ndmin=2)
    expected = joblib.load(os.path.join(model_dir, "model.joblib")).predict_proba(test)
    numpy.save(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "expected.npy"), expected)
"""


def test_sklearn_entry_point_deploy_predicts_what_the_model_predicts(server, unique_name,
                                                                     cancer, tmp_path):
    from sagemaker.deserializers import NumpyDeserializer
    from sagemaker.serializers import NumpySerializer
    from sagemaker.sklearn import SKLearn

    x_train, x_test, y_train, _ = cancer
    session = sdk_session()
    bucket = session.default_bucket()

    def upload(rows, name: str) -> str:
        text = "\n".join(",".join(f"{value:g}" for value in row) for row in rows) + "\n"
        return session.upload_string_as_file_body(
            text, bucket, f"{unique_name}/{name}/{name}.csv").rsplit("/", 1)[0]

    # Values as the CSV carries them, so the job and the endpoint see the same numbers.
    x_sent = numpy.array([[float(f"{value:g}") for value in row] for row in x_test[:25]])
    channels = {"train": upload(numpy.column_stack([y_train, x_train]), "train"),
                "test": upload(x_sent, "test")}
    source = tmp_path / "code"
    source.mkdir()
    (source / "model.py").write_text(ENTRY_POINT)
    estimator = SKLearn(entry_point="model.py", source_dir=str(source), role=ROLE,
                        framework_version="1.2-1", instance_type="ml.m5.large",
                        instance_count=1, sagemaker_session=session,
                        output_path=f"s3://{bucket}/{unique_name}/models")
    estimator.fit(channels, logs=False)
    output = estimator.model_data.rsplit("/", 1)[0] + "/output.tar.gz"
    produced = model_files(server, output)
    expected = numpy.load(io.BytesIO(produced["expected.npy"]), allow_pickle=False)

    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                 endpoint_name=unique_name, serializer=NumpySerializer(),
                                 deserializer=NumpyDeserializer(), wait=False)
    in_service(server, unique_name)
    try:
        served = predictor.predict(x_sent)
        assert served.shape == (25, 2)
        numpy.testing.assert_allclose(served, expected, rtol=1e-9)
    finally:
        predictor.delete_endpoint()
