"""Model quality baselines through the SDK's ModelQualityMonitor: metrics equal scikit-learn's.

Each test uploads a CSV of predictions and labels, runs ``suggest_baseline`` (a processing job
with the Model Monitor analyzer image, run for real) and compares statistics.json with
scikit-learn computed here on the same rows; constraints.json must carry SageMaker's
model-quality constraints. Bad inputs end the job Failed with a reason that says what to fix.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from jobs_helpers import sdk_session

REL = 1e-12


@pytest.fixture()
def monitor(server):
    import sagemaker
    from sagemaker.model_monitor import ModelQualityMonitor

    session = sdk_session()
    return ModelQualityMonitor(role=sagemaker.get_execution_role(session),
                               instance_type="ml.m5.xlarge", sagemaker_session=session)


def _baseline(monitor, tmp_path, frame: pd.DataFrame, problem_type: str, **attributes):
    from sagemaker.model_monitor import DatasetFormat

    path = tmp_path / "validation_with_predictions.csv"
    frame.to_csv(path, index=False)
    job = monitor.suggest_baseline(baseline_dataset=str(path),
                                   dataset_format=DatasetFormat.csv(header=True),
                                   problem_type=problem_type, wait=True, logs=False,
                                   **attributes)
    description = job.describe()
    assert description["ProcessingJobStatus"] == "Completed", description.get("FailureReason")
    statistics = monitor.baseline_statistics().body_dict
    constraints = monitor.suggested_constraints().body_dict
    return statistics, constraints


def _value(metric: dict) -> float:
    return metric["value"]


def test_binary_baseline_equals_scikit_learn(monitor, tmp_path):
    rng = np.random.default_rng(7)
    n = 400
    label = rng.integers(0, 2, n)
    probability = np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1)
    prediction = (probability >= 0.5).astype(int)
    frame = pd.DataFrame({"probability": probability, "prediction": prediction, "label": label})
    statistics, constraints = _baseline(
        monitor, tmp_path, frame, "BinaryClassification", inference_attribute="prediction",
        probability_attribute="probability", ground_truth_attribute="label")

    assert statistics["version"] == 0.0
    assert statistics["dataset"]["item_count"] == n
    metrics = statistics["binary_classification_metrics"]
    expected = {
        "accuracy": sk.accuracy_score(label, prediction),
        "precision": sk.precision_score(label, prediction),
        "recall": sk.recall_score(label, prediction),
        "true_positive_rate": sk.recall_score(label, prediction),
        "false_negative_rate": 1 - sk.recall_score(label, prediction),
        "f0_5": sk.fbeta_score(label, prediction, beta=0.5),
        "f1": sk.f1_score(label, prediction),
        "f2": sk.fbeta_score(label, prediction, beta=2),
        "auc": sk.roc_auc_score(label, probability),
        # always predicting the positive class
        "accuracy_best_constant_classifier": label.mean(),
        "precision_best_constant_classifier": label.mean(),
        "recall_best_constant_classifier": 1.0,
        "f1_best_constant_classifier": 2 * label.mean() / (1 + label.mean()),
    }
    for name, value in expected.items():
        assert _value(metrics[name]) == pytest.approx(value, rel=REL), name
    matrix = sk.confusion_matrix(label, prediction)
    assert metrics["confusion_matrix"] == {
        "0": {"0": int(matrix[0][0]), "1": int(matrix[0][1])},
        "1": {"0": int(matrix[1][0]), "1": int(matrix[1][1])}}
    tn, fp = matrix[0]
    assert _value(metrics["false_positive_rate"]) == pytest.approx(fp / (fp + tn), rel=REL)
    assert _value(metrics["true_negative_rate"]) == pytest.approx(tn / (fp + tn), rel=REL)
    fpr, tpr, _ = sk.roc_curve(label, probability)
    curve = metrics["receiver_operating_characteristic_curve"]
    assert curve["false_positive_rates"] == pytest.approx(list(fpr))
    assert curve["true_positive_rates"] == pytest.approx(list(tpr))
    precisions = metrics["precision_recall_curve"]["precisions"]
    recalls = metrics["precision_recall_curve"]["recalls"]
    assert recalls[0] == 0.0 and recalls[-1] == 1.0 and len(precisions) == len(recalls)
    # >= 200 samples: a standard deviation by resampling, small but not zero
    for name in ("accuracy", "f1", "auc"):
        assert 0 < metrics[name]["standard_deviation"] < 0.1, name

    section = constraints["binary_classification_constraints"]
    assert constraints["version"] == 0.0
    assert section["accuracy"] == {"threshold": pytest.approx(expected["accuracy"], rel=REL),
                                   "comparison_operator": "LessThanThreshold"}
    assert section["auc"]["comparison_operator"] == "LessThanThreshold"
    assert section["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"
    assert set(section) >= {"recall", "precision", "accuracy", "f1", "f2", "f0_5", "auc"}


def test_multiclass_baseline_equals_scikit_learn_and_small_sets_have_no_stddev(monitor,
                                                                                tmp_path):
    rng = np.random.default_rng(11)
    n = 150  # < 200: SageMaker reports no standard deviation
    classes = np.array(["billing", "network", "printer"])
    label = classes[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    prediction = np.where(rng.random(n) < 0.7, label, classes[rng.integers(0, 3, n)])
    frame = pd.DataFrame({"label": label, "prediction": prediction})
    statistics, constraints = _baseline(
        monitor, tmp_path, frame, "MulticlassClassification", inference_attribute="prediction",
        ground_truth_attribute="label")

    metrics = statistics["multiclass_classification_metrics"]
    assert _value(metrics["accuracy"]) == pytest.approx(sk.accuracy_score(label, prediction),
                                                        rel=REL)
    for name, fn, extra in (("weighted_f1", sk.f1_score, {}),
                            ("weighted_f2", sk.fbeta_score, {"beta": 2}),
                            ("weighted_f0_5", sk.fbeta_score, {"beta": 0.5}),
                            ("weighted_precision", sk.precision_score, {}),
                            ("weighted_recall", sk.recall_score, {})):
        assert _value(metrics[name]) == pytest.approx(
            fn(label, prediction, average="weighted", **extra), rel=REL), name
        assert metrics[name]["standard_deviation"] == "NaN"
    majority = np.full(n, "billing")
    assert _value(metrics["accuracy_best_constant_classifier"]) == pytest.approx(
        sk.accuracy_score(label, majority), rel=REL)
    matrix = sk.confusion_matrix(label, prediction, labels=list(classes))
    assert metrics["confusion_matrix"] == {
        actual: {predicted: int(matrix[i][j]) for j, predicted in enumerate(classes)}
        for i, actual in enumerate(classes)}
    assert set(constraints["multiclass_classification_constraints"]) == {
        "accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5", "weighted_f1",
        "weighted_f2"}


def test_regression_baseline_equals_scikit_learn(monitor, tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    label = rng.normal(10, 3, n)
    prediction = label + rng.normal(0.5, 1.5, n)
    frame = pd.DataFrame({"prediction": prediction, "label": label})
    statistics, constraints = _baseline(monitor, tmp_path, frame, "Regression",
                                        inference_attribute="prediction",
                                        ground_truth_attribute="label")
    metrics = statistics["regression_metrics"]
    mse = sk.mean_squared_error(label, prediction)
    assert _value(metrics["mae"]) == pytest.approx(sk.mean_absolute_error(label, prediction),
                                                   rel=1e-9)
    assert _value(metrics["mse"]) == pytest.approx(mse, rel=1e-9)
    assert _value(metrics["rmse"]) == pytest.approx(math.sqrt(mse), rel=1e-9)
    assert _value(metrics["r2"]) == pytest.approx(sk.r2_score(label, prediction), rel=1e-9)
    section = constraints["regression_constraints"]
    assert section["mae"]["comparison_operator"] == "GreaterThanThreshold"
    assert section["r2"]["comparison_operator"] == "LessThanThreshold"


CAPTURED = {"captureData": {"endpointOutput": {"observedContentType": "text/csv",
                                               "mode": "OUTPUT", "data": "1",
                                               "encoding": "CSV"}},
            "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-12-01T10:00:00Z"},
            "eventVersion": "0"}


def _run_analyzer(server, unique_name, env: dict, files: dict[str, bytes], inputs: dict):
    """A processing job with the analyzer image, as a schedule's execution makes it."""
    import sagemaker
    from sagemaker import image_uris
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

    from jobs_helpers import wait_for_status

    session = sdk_session()
    bucket = session.default_bucket()
    s3 = server.client("s3")
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"{unique_name}/{key}", Body=body)
    processor = Processor(
        role=sagemaker.get_execution_role(session),
        image_uri=image_uris.retrieve("model-monitor", session.boto_region_name),
        instance_count=1, instance_type="ml.m5.xlarge", sagemaker_session=session,
        env={"analysis_type": "MODEL_QUALITY", "problem_type": "BinaryClassification",
             "output_path": "/opt/ml/processing/output",
             "publish_cloudwatch_metrics": "Disabled", **env})
    processor.run(inputs=[ProcessingInput(source=f"s3://{bucket}/{unique_name}/{source}",
                                          destination=destination)
                          for source, destination in inputs.items()],
                  outputs=[ProcessingOutput(source="/opt/ml/processing/output",
                                            destination=f"s3://{bucket}/{unique_name}/out")],
                  wait=False, logs=False)
    client = server.client("sagemaker")
    name = processor.latest_job.job_name
    return wait_for_status(lambda: client.describe_processing_job(ProcessingJobName=name),
                           "ProcessingJobStatus", {"Completed", "Failed", "Stopped"},
                           timeout=180)


def test_a_baseline_constraints_file_that_is_not_json_fails_the_job_with_its_reason(
        server, unique_name):
    merged = dict(CAPTURED, groundTruthData={"data": "1", "encoding": "CSV"})
    description = _run_analyzer(
        server, unique_name,
        {"dataset_format": json.dumps({"sagemakerMergeJson": {
            "captureIndexNames": ["endpointOutput"]}}),
         "dataset_source": "/opt/ml/processing/input_data",
         "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
         "inference_attribute": "0"},
        {"merged/part.jsonl": (json.dumps(merged) + "\n").encode(),
         "baseline/constraints.json": b"{not json"},
        {"merged/": "/opt/ml/processing/input_data",
         "baseline/constraints.json": "/opt/ml/processing/baseline/constraints"})
    assert description["ProcessingJobStatus"] == "Failed"
    assert description["FailureReason"].startswith("ClientError: ")
    assert "constraints file is not valid JSON" in description["FailureReason"]


def test_captured_predictions_without_matching_ground_truth_fail_with_the_counts(
        server, unique_name):
    """Labels for other ids and a malformed line: nothing to score, a reason that says why."""
    label = {"groundTruthData": {"data": "0", "encoding": "CSV"},
             "eventMetadata": {"eventId": "someone-else"}, "eventVersion": "0"}
    description = _run_analyzer(
        server, unique_name,
        {"dataset_format": json.dumps({"sagemakerCaptureJson": {
            "captureIndexNames": ["endpointInput", "endpointOutput"]}}),
         "dataset_source": "/opt/ml/processing/input/endpoint",
         "ground_truth_source": "/opt/ml/processing/groundtruth",
         "inference_attribute": "0"},
        {"capture/ep/AllTraffic/2026/12/01/10/00-00-000-x.jsonl":
             (json.dumps(CAPTURED) + "\n").encode(),
         "gt/2026/12/01/11/labels.jsonl": (json.dumps(label) + "\n{broken\n").encode()},
        {"capture/": "/opt/ml/processing/input/endpoint",
         "gt/": "/opt/ml/processing/groundtruth"})
    assert description["ProcessingJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith("ClientError: No captured prediction in the window has a "
                             "ground-truth label")
    assert "1 captured records without a label" in reason
    assert "1 malformed ground-truth lines" in reason


def test_regression_over_captured_json_outputs_flags_a_grown_error(server, unique_name):
    """Captured JSON outputs read by a JSON path, labels joined by inferenceId (not eventId),
    a record outside the window left out; mae above its baseline threshold is a violation."""
    rng = np.random.default_rng(17)
    n = 60
    truth = rng.normal(50, 10, n)
    predicted = truth + rng.normal(0, 4, n)
    captured, labels = [], []
    for index in range(n + 1):  # the last one is outside the window
        minute = 59 if index == n else index % 50
        value = 1e6 if index == n else predicted[index]
        captured.append({
            "captureData": {"endpointOutput": {
                "observedContentType": "application/json", "mode": "OUTPUT",
                "data": json.dumps({"predictions": [{"score": value}]}), "encoding": "JSON"}},
            "eventMetadata": {"eventId": f"event-{index}", "inferenceId": f"order-{index}",
                              "inferenceTime": f"2026-12-01T10:{minute:02d}:00Z"},
            "eventVersion": "0"})
        labels.append({"groundTruthData": {"data": str(truth[min(index, n - 1)]),
                                           "encoding": "CSV"},
                       "eventMetadata": {"eventId": f"order-{index}"}, "eventVersion": "0"})
    constraints = {"version": 0.0, "regression_constraints": {
        "mae": {"threshold": 1.0, "comparison_operator": "GreaterThanThreshold"},
        "r2": {"threshold": 0.1, "comparison_operator": "LessThanThreshold"}}}
    description = _run_analyzer(
        server, unique_name,
        {"problem_type": "Regression",
         "dataset_format": json.dumps({"sagemakerCaptureJson": {
             "captureIndexNames": ["endpointInput", "endpointOutput"]}}),
         "dataset_source": "/opt/ml/processing/input/endpoint",
         "ground_truth_source": "/opt/ml/processing/groundtruth",
         "inference_attribute": "predictions[0].score",
         "start_time": "2026-12-01T10:00:00Z", "end_time": "2026-12-01T10:55:00Z",
         "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json"},
        {"capture/ep/AllTraffic/2026/12/01/10/00-00-000-x.jsonl":
             "".join(json.dumps(r) + "\n" for r in captured).encode(),
         "gt/2026/12/01/13/labels.jsonl": "".join(json.dumps(r) + "\n" for r in labels).encode(),
         "baseline/constraints.json": json.dumps(constraints).encode()},
        {"capture/": "/opt/ml/processing/input/endpoint",
         "gt/": "/opt/ml/processing/groundtruth",
         "baseline/constraints.json": "/opt/ml/processing/baseline/constraints"})
    assert description["ProcessingJobStatus"] == "Completed", description.get("FailureReason")
    assert description["ExitMessage"] == ("CompletedWithViolations: Job completed "
                                          "successfully with 1 violations.")
    s3 = server.client("s3")
    bucket = sdk_session().default_bucket()

    def read(name):
        return json.loads(s3.get_object(Bucket=bucket, Key=f"{unique_name}/out/{name}")[
            "Body"].read())

    metrics = read("statistics.json")["regression_metrics"]
    assert metrics["mae"]["value"] == pytest.approx(
        sk.mean_absolute_error(truth, predicted), rel=1e-9)
    assert metrics["r2"]["value"] == pytest.approx(sk.r2_score(truth, predicted), rel=1e-9)
    [violation] = read("constraint_violations.json")["violations"]
    assert violation["metric_name"] == "mae"
    assert violation["constraint_check_type"] == "GreaterThanThreshold"
