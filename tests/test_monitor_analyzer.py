"""The Model Monitor analyzer (data quality) as SageMaker runs it: processing jobs on the
model-monitor image, driven through the SageMaker SDK against a real server.

One baseline job (DefaultModelMonitor.suggest_baseline) and a handful of comparison jobs
shaped like monitoring executions (capture data or CSV, baseline files, SageMaker's
container environment), run concurrently to keep the job count and time small.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from jobs_helpers import sdk_session, wait_for_status
from monitor_helpers import capture_line

ROWS = 3000
CITIES = ["NYC", "SF", "LA", "CHI"]
FEATURES = ["label", "age", "income", "city", "tenure"]


def _baseline_frame(seed: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "label": rng.integers(0, 2, rows),
        "age": pd.array(rng.integers(18, 80, rows), dtype="Int64"),
        "income": rng.normal(50000, 12000, rows).round(2),
        "city": pd.array(rng.choice(CITIES, rows, p=[.4, .3, .2, .1]), dtype=object),
        "tenure": rng.exponential(5.0, rows).round(3),
    })
    frame.loc[::10, "income"] = np.nan  # 90% complete
    frame.loc[3::20, "city"] = None  # 95% complete
    return frame


def _capture_rows(frame: pd.DataFrame) -> list[tuple[list, float]]:
    """Capture payloads: the features as endpointInput, label as endpointOutput."""
    rows = []
    for record in frame.itertuples(index=False):
        features = [None if pd.isna(v) else v for v in (record.age, record.income, record.city,
                                                        record.tenure)]
        rows.append((features, int(record.label)))
    return rows


@pytest.fixture(scope="module")
def baseline(server):
    """suggest_baseline on a CSV with numeric, categorical and missing values."""
    from sagemaker import get_execution_role
    from sagemaker.model_monitor import DatasetFormat, DefaultModelMonitor

    session = sdk_session()
    bucket = session.default_bucket()
    prefix = f"analyzer-{int(time.time() * 1000)}"
    frame = _baseline_frame(seed=0)
    s3 = server.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/train/train.csv",
                  Body=frame.to_csv(index=False).encode())
    monitor = DefaultModelMonitor(role=get_execution_role(session), instance_count=1,
                                  instance_type="ml.m5.xlarge", sagemaker_session=session)
    monitor.suggest_baseline(baseline_dataset=f"s3://{bucket}/{prefix}/train/train.csv",
                             dataset_format=DatasetFormat.csv(header=True),
                             output_s3_uri=f"s3://{bucket}/{prefix}/baseline",
                             wait=True, logs=False)
    return {"monitor": monitor, "frame": frame, "bucket": bucket, "prefix": prefix,
            "session": session, "s3": s3}


def test_suggest_baseline_statistics_agree_with_pandas(baseline, sagemaker_client):
    monitor, frame = baseline["monitor"], baseline["frame"]
    job = sagemaker_client.describe_processing_job(
        ProcessingJobName=monitor.latest_baselining_job_name)
    assert job["ProcessingJobStatus"] == "Completed"
    statistics = monitor.baseline_statistics().body_dict
    constraints = monitor.suggested_constraints().body_dict
    assert statistics["dataset"] == {"item_count": ROWS}
    features = {f["name"]: f for f in statistics["features"]}
    assert list(features) == FEATURES
    assert {n: f["inferred_type"] for n, f in features.items()} == {
        "label": "Integral", "age": "Integral", "income": "Fractional", "city": "String",
        "tenure": "Fractional"}

    for name in ("label", "age", "income", "tenure"):
        values = frame[name].dropna().to_numpy(dtype=np.float64)
        stats = features[name]["numerical_statistics"]
        assert stats["common"] == {"num_present": values.size,
                                   "num_missing": ROWS - values.size}
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert stats["sum"] == pytest.approx(values.sum(), rel=1e-9)
        assert stats["std_dev"] == pytest.approx(values.std(), rel=1e-9)  # population
        assert (stats["min"], stats["max"]) == (values.min(), values.max())
        kll = stats["distribution"]["kll"]
        counts, edges = np.histogram(values, bins=10, range=(values.min(), values.max()))
        assert [b["count"] for b in kll["buckets"]] == counts.tolist()
        assert [b["lower_bound"] for b in kll["buckets"]] == pytest.approx(edges[:-1].tolist())
        assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
        # Quantiles read back from the sketch's levels (level i weighs 2^i) are within the
        # KLL rank error of the exact ones.
        items = np.concatenate([np.asarray(level, float) for level in kll["sketch"]["data"]])
        weights = np.concatenate([np.full(len(level), 2.0 ** i)
                                  for i, level in enumerate(kll["sketch"]["data"])])
        assert weights.sum() == values.size
        order = np.argsort(items)
        cumulative = np.cumsum(weights[order]) / weights.sum()
        ordered = np.sort(values)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            estimate = items[order][np.searchsorted(cumulative, q)]
            below = np.searchsorted(ordered, estimate, side="left") / values.size
            at_or_below = np.searchsorted(ordered, estimate, side="right") / values.size
            assert below - 0.01 <= q <= at_or_below + 0.01, (name, q, below, at_or_below)

    city = frame["city"].dropna()
    string_stats = features["city"]["string_statistics"]
    assert string_stats["common"] == {"num_present": city.size, "num_missing": ROWS - city.size}
    assert string_stats["distinct_count"] == 4.0
    buckets = {b["value"]: b["count"] for b in
               string_stats["distribution"]["categorical"]["buckets"]}
    assert buckets == city.value_counts().to_dict()

    suggested = {f["name"]: f for f in constraints["features"]}
    assert suggested["income"]["completeness"] == pytest.approx(0.9)
    assert suggested["city"]["completeness"] == pytest.approx(0.95)
    assert suggested["label"]["completeness"] == 1.0
    assert suggested["income"]["num_constraints"] == {"is_non_negative": True}
    assert set(suggested["city"]["string_constraints"]["domains"]) == set(CITIES)
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0, "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled", "comparison_threshold": 0.1,
            "comparison_method": "Robust", "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": "LInfinity"}}
    # Jackson's layout, as SageMaker's container prints it.
    text = baseline["s3"].get_object(
        Bucket=baseline["bucket"], Key=f"{baseline['prefix']}/baseline/statistics.json"
    )["Body"].read().decode()
    assert text.startswith('{\n  "version" : 0.0,\n  "dataset" : {\n    "item_count" : 3000\n'
                           '  },\n  "features" : [ {\n    "name" : "label",')


def _start_run(baseline, name: str, dataset: str, dataset_format: dict, *,
               stats_uri: str | None = None, extra_env: dict | None = None) -> str:
    """A processing job on the analyzer image, shaped like a monitoring execution."""
    from sagemaker import get_execution_role, image_uris
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

    session, bucket, prefix = baseline["session"], baseline["bucket"], baseline["prefix"]
    base = f"s3://{bucket}/{prefix}/baseline"
    env = {
        "dataset_format": json.dumps(dataset_format),
        "dataset_source": "/opt/ml/processing/input/endpoint",
        "output_path": "/opt/ml/processing/resultdata",
        "baseline_statistics": "/opt/ml/processing/baseline/stats/statistics.json",
        "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
        "publish_cloudwatch_metrics": "Disabled",
        **(extra_env or {}),
    }
    processor = Processor(
        role=get_execution_role(session),
        image_uri=image_uris.retrieve("model-monitor", session.boto_region_name),
        instance_count=1, instance_type="ml.m5.xlarge", env=env, sagemaker_session=session)
    processor.run(
        inputs=[ProcessingInput(source=dataset, destination="/opt/ml/processing/input/endpoint"),
                ProcessingInput(source=stats_uri or f"{base}/statistics.json",
                                destination="/opt/ml/processing/baseline/stats"),
                ProcessingInput(source=f"{base}/constraints.json",
                                destination="/opt/ml/processing/baseline/constraints")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/resultdata",
                                  destination=f"s3://{bucket}/{prefix}/runs/{name}")],
        job_name=f"{prefix}-{name}", wait=False, logs=False)
    return f"{prefix}-{name}"


def _put(baseline, key: str, body: str) -> str:
    baseline["s3"].put_object(Bucket=baseline["bucket"], Key=f"{baseline['prefix']}/{key}",
                              Body=body.encode())
    return f"s3://{baseline['bucket']}/{baseline['prefix']}/{key}"


def _capture_file(rows: list[tuple[list, float]], start: float) -> str:
    return "".join(capture_line(features, prediction, start + i) + "\n"
                   for i, (features, prediction) in enumerate(rows))


def _violations(baseline, name: str) -> list[dict]:
    body = baseline["s3"].get_object(
        Bucket=baseline["bucket"],
        Key=f"{baseline['prefix']}/runs/{name}/constraint_violations.json")["Body"].read()
    return json.loads(body)["violations"]


def test_comparison_runs_flag_each_problem_and_clean_data_passes(baseline, sagemaker_client):
    capture_format = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput",
                                                                      "endpointOutput"]}}
    window_start = time.time() - 1800
    start_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window_start - 60))
    end_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window_start + 1200))
    endpoint, schedule = f"ep-{baseline['prefix']}", f"schedule-{baseline['prefix']}"

    # Clean traffic: the same distributions and missing patterns as the baseline.
    clean = _capture_rows(_baseline_frame(seed=1, rows=1000))
    clean_lines = _capture_file(clean, window_start)
    clean_uri = _put(baseline, "capture/clean/c.jsonl", clean_lines)

    # The same clean traffic with a malformed line and a record outside the window.
    lines = clean_lines.splitlines()
    lines.insert(7, '{"captureData": {"endpointInput": ')
    lines.append(capture_line([30, 1.0, "SF", 1.0], 0, window_start + 7200))
    malformed_uri = _put(baseline, "capture/malformed/m.jsonl", "\n".join(lines) + "\n")

    # A drifted batch with a header: income shifted, an unseen city, nulls in age, strings
    # in label, tenure missing and an extra column.
    drifted = _baseline_frame(seed=2, rows=1000)
    drifted["income"] = drifted["income"] * 1.6
    drifted.loc[:49, "city"] = "BOSTON"
    drifted.loc[:299, "age"] = pd.NA
    drifted["label"] = drifted["label"].astype(object)
    drifted.loc[:9, "label"] = "unknown"
    drifted = drifted.drop(columns=["tenure"]).assign(bonus=1)
    drifted_uri = _put(baseline, "batch/drifted.csv", drifted.to_csv(index=False))

    bad_stats_uri = _put(baseline, "bad/statistics.json", "this is not JSON")

    jobs = {
        "clean": _start_run(baseline, "clean", clean_uri.rsplit("/", 1)[0], capture_format,
                            extra_env={"publish_cloudwatch_metrics": "Enabled",
                                       "sagemaker_endpoint_name": endpoint,
                                       "sagemaker_monitoring_schedule_name": schedule,
                                       "start_time": start_text, "end_time": end_text}),
        "drifted": _start_run(baseline, "drifted", drifted_uri,
                              {"csv": {"header": True, "output_columns_position": "START"}}),
        "malformed": _start_run(baseline, "malformed", malformed_uri, capture_format,
                                extra_env={"start_time": start_text, "end_time": end_text}),
        "empty": _start_run(baseline, "empty", clean_uri, capture_format,
                            extra_env={"start_time": "2020-01-01T00:00:00Z",
                                       "end_time": "2020-01-01T01:00:00Z"}),
        "badbaseline": _start_run(baseline, "badbaseline", clean_uri, capture_format,
                                  stats_uri=bad_stats_uri),
    }
    done = {key: wait_for_status(
        lambda name=name: sagemaker_client.describe_processing_job(ProcessingJobName=name),
        "ProcessingJobStatus", {"Completed", "Failed", "Stopped"}) for key, name in jobs.items()}

    assert done["clean"]["ProcessingJobStatus"] == "Completed", done["clean"].get("FailureReason")
    assert done["clean"]["ExitMessage"] == \
        "Completed: Job completed successfully with no violations."
    assert _violations(baseline, "clean") == []

    drifted_run = done["drifted"]
    assert drifted_run["ProcessingJobStatus"] == "Completed", drifted_run.get("FailureReason")
    found = {(v["feature_name"], v["constraint_check_type"]) for v in
             _violations(baseline, "drifted")}
    assert found == {
        ("income", "baseline_drift_check"),
        ("city", "categorical_values_check"),
        ("age", "completeness_check"),
        ("label", "data_type_check"),
        ("tenure", "missing_column_check"),
        ("bonus", "extra_column_check"),
    }
    assert drifted_run["ExitMessage"] == \
        f"CompletedWithViolations: Job completed successfully with {len(found)} violations."

    malformed = done["malformed"]
    assert malformed["ProcessingJobStatus"] == "Completed", malformed.get("FailureReason")
    assert malformed["ExitMessage"] == ("Completed: Job completed successfully with no "
                                        "violations. Skipped 1 malformed record(s).")
    statistics = json.loads(baseline["s3"].get_object(
        Bucket=baseline["bucket"],
        Key=f"{baseline['prefix']}/runs/malformed/statistics.json")["Body"].read())
    assert statistics["dataset"]["item_count"] == len(clean)  # the late record is left out

    assert done["empty"]["ProcessingJobStatus"] == "Failed"
    assert done["empty"]["FailureReason"].startswith("ClientError: Job inputs had no data")
    assert done["badbaseline"]["ProcessingJobStatus"] == "Failed"
    assert "baseline statistics file statistics.json is not valid JSON" in \
        done["badbaseline"]["FailureReason"]

    # The clean run published its metrics as SageMaker's analyzer does.
    cloudwatch = baseline["session"].boto_session.client("cloudwatch")
    names = {m["MetricName"] for m in cloudwatch.list_metrics(
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        Dimensions=[{"Name": "Endpoint", "Value": endpoint},
                    {"Name": "MonitoringSchedule", "Value": schedule}])["Metrics"]}
    assert {"feature_baseline_drift_income", "feature_non_null_income", "feature_data_income",
            "feature_baseline_drift_city", "feature_non_null_city"} <= names
    points = cloudwatch.get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/data-metrics", MetricName="feature_data_age",
        Dimensions=[{"Name": "Endpoint", "Value": endpoint},
                    {"Name": "MonitoringSchedule", "Value": schedule}],
        StartTime=window_start - 3600, EndTime=window_start + 3600, Period=3600,
        Statistics=["SampleCount", "Minimum", "Maximum"])["Datapoints"]
    ages = [f[0] for f, _ in clean if f[0] is not None]
    assert [(p["SampleCount"], p["Minimum"], p["Maximum"]) for p in points] == [
        (len(ages), min(ages), max(ages))]


def test_suggest_baseline_reads_parquet(server):
    """The same profile from a parquet dataset (the SDK has no DatasetFormat.parquet)."""
    import io

    from sagemaker import get_execution_role
    from sagemaker.model_monitor import DefaultModelMonitor

    session = sdk_session()
    bucket = session.default_bucket()
    prefix = f"analyzer-parquet-{int(time.time() * 1000)}"
    frame = _baseline_frame(seed=3, rows=500)
    body = io.BytesIO()
    frame.to_parquet(body, index=False)
    server.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/train/part-0.parquet",
                                   Body=body.getvalue())
    monitor = DefaultModelMonitor(role=get_execution_role(session), instance_count=1,
                                  instance_type="ml.m5.xlarge", sagemaker_session=session)
    monitor.suggest_baseline(baseline_dataset=f"s3://{bucket}/{prefix}/train/",
                             dataset_format={"parquet": {}},  # as the container reads it
                             output_s3_uri=f"s3://{bucket}/{prefix}/baseline",
                             wait=True, logs=False)
    statistics = monitor.baseline_statistics().body_dict
    assert statistics["dataset"] == {"item_count": 500}
    features = {f["name"]: f for f in statistics["features"]}
    assert list(features) == FEATURES
    income = frame["income"].dropna().to_numpy(dtype=np.float64)
    stats = features["income"]["numerical_statistics"]
    assert stats["common"]["num_missing"] == 500 - income.size
    assert stats["mean"] == pytest.approx(income.mean(), rel=1e-9)
    assert features["city"]["inferred_type"] == "String"
