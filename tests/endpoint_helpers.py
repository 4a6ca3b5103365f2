"""Helpers for serving tests: a tiny scikit-learn entry-point model and endpoints of it."""

from __future__ import annotations

import io
import tarfile
import time

from jobs_helpers import SKLEARN_IMAGE

# Multiplies its JSON input by MODEL_FACTOR (so a test can tell which model answered) and
# refuses negative numbers, the way a model that raises does.
INFERENCE_PY = '''
import os


def model_fn(model_dir):
    return float(os.environ.get("MODEL_FACTOR", "1"))


def predict_fn(data, factor):
    if (data < 0).any():
        raise ValueError("the model refuses negative inputs")
    return data * factor
'''


def model_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        source = INFERENCE_PY.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(source)
        archive.addfile(info, io.BytesIO(source))
    return buffer.getvalue()


def create_model(sagemaker, s3, bucket: str, name: str, factor: float) -> str:
    key = f"{name}/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=model_tarball())
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                            "MODEL_FACTOR": str(factor)},
        },
    )
    return name


def variant(name: str, model: str, weight: float, count: int = 1) -> dict:
    return {"VariantName": name, "ModelName": model, "InitialInstanceCount": count,
            "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}


def create_endpoint(sagemaker, name: str, variants: list[dict],
                    data_capture: dict | None = None, timeout: float = 300) -> dict:
    config = {"EndpointConfigName": name, "ProductionVariants": variants}
    if data_capture is not None:
        config["DataCaptureConfig"] = data_capture
    sagemaker.create_endpoint_config(**config)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_in_service(sagemaker, name, timeout)


def wait_in_service(sagemaker, name: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        description = sagemaker.describe_endpoint(EndpointName=name)
        status = description["EndpointStatus"]
        if status == "InService":
            return description
        if status == "Failed":
            raise AssertionError(f"endpoint {name} failed: {description.get('FailureReason')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"endpoint {name} still {status} after {timeout}s")
        time.sleep(0.25)


def delete_endpoint(sagemaker, name: str) -> None:
    try:
        sagemaker.delete_endpoint(EndpointName=name)
    except Exception:  # noqa: BLE001 - cleanup after a failed test
        pass
