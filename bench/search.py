"""Search latency: ``python bench/search.py [--jobs 10000] [--repeats 20]``.

Starts a modelyard server (temporary data directory) and inserts ``--jobs`` training-job
Describe documents DIRECTLY through the resource store (``ResourceStore.create_many`` on the
server's SQLite database, the way CreateTrainingJob stores them, minus running the jobs:
running 10,000 real jobs would take hours). Each has hyperparameters, two input channels,
final metrics, tags and status transitions, about the size of a real document.

Measured through boto3: ``Search`` on TrainingJob with two filters
(``TrainingJobStatus`` Equals Completed, ``Metrics.validation:accuracy`` GreaterThan 0.9)
sorted by ``Metrics.validation:accuracy`` descending, MaxResults 10 -- the first call (which
decodes and caches every document) and the median / worst of ``--repeats`` further calls.

Baseline, same run, same data: the same filter and sort in plain Python over documents
already decoded in this process (what the server must do at least, minus HTTP and SQL).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from server_process import ServerProcess  # noqa: E402

from modelyard.store.db import Database  # noqa: E402
from modelyard.store.resources import ResourceStore  # noqa: E402

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ModelyardExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def training_document(index: int, rng: random.Random, now: float) -> dict:
    name = f"bench-job-{index:05d}"
    created = now - 86400 + index
    status = rng.choice(["Completed"] * 6 + ["Failed", "Stopped"])
    accuracy = round(rng.random(), 4)
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}",
        "TrainingJobStatus": status, "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": [
                                       {"Name": "validation:accuracy", "Regex": "acc: ([0-9.]+)"},
                                       {"Name": "train:loss", "Regex": "loss: ([0-9.]+)"}]},
        "RoleArn": ROLE,
        "HyperParameters": {"epochs": str(rng.randint(1, 50)), "eta": str(rng.random()),
                            "max_depth": str(rng.randint(2, 10)), "objective": "binary:logistic"},
        "InputDataConfig": [
            {"ChannelName": channel, "ContentType": "text/csv", "CompressionType": "None",
             "RecordWrapperType": "None", "InputMode": "File",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                             "S3Uri": f"s3://bench/{name}/{channel}",
                                             "S3DataDistributionType": "FullyReplicated"}}}
            for channel in ("train", "validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://bench/{name}/output", "KmsKeyId": ""},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": False,
        "EnableManagedSpotTraining": False,
        "CreationTime": created, "LastModifiedTime": created + 60,
        "TrainingStartTime": created + 5, "TrainingEndTime": created + 60,
        "SecondaryStatusTransitions": [
            {"Status": step, "StartTime": created + offset, "StatusMessage": step}
            for offset, step in enumerate(["Starting", "Downloading", "Training", "Uploading",
                                           status])],
        "FinalMetricDataList": [
            {"MetricName": "validation:accuracy", "Value": accuracy, "Timestamp": created + 60},
            {"MetricName": "train:loss", "Value": round(rng.random(), 4),
             "Timestamp": created + 60}],
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bench/{name}/output/model.tar.gz"},
        "TrainingTimeInSeconds": 55, "BillableTimeInSeconds": 55,
        "Tags": [{"Key": "team", "Value": rng.choice(["fraud", "search", "ads"])}],
    }


SEARCH = {
    "Resource": "TrainingJob",
    "SearchExpression": {"Filters": [
        {"Name": "TrainingJobStatus", "Operator": "Equals", "Value": "Completed"},
        {"Name": "Metrics.validation:accuracy", "Operator": "GreaterThan", "Value": "0.9"}]},
    "SortBy": "Metrics.validation:accuracy", "SortOrder": "Descending", "MaxResults": 10,
}


def baseline(documents: list[dict]) -> list[str]:
    def accuracy(document: dict) -> float | None:
        for metric in document.get("FinalMetricDataList", []):
            if metric["MetricName"] == "validation:accuracy":
                return metric["Value"]
        return None
    hits = [d for d in documents if d["TrainingJobStatus"] == "Completed"
            and (accuracy(d) or 0) > 0.9]
    hits.sort(key=accuracy, reverse=True)
    return [d["TrainingJobName"] for d in hits[:10]]


def server_store(server: ServerProcess, data_dir: str) -> ResourceStore:
    """The resource store of a running benchmark server, opened beside it (to insert rows)."""
    url = server.extra_env.get("MODELYARD_DATABASE_URL") or \
        f"sqlite:///{Path(data_dir) / 'metadata.sqlite3'}"
    return ResourceStore(Database(url))


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server = ServerProcess.start(Path(data_dir), MODELYARD_ACCOUNT_ID=ACCOUNT)
        try:
            rng = random.Random(7)
            now = time.time()
            documents = [training_document(index, rng, now) for index in range(args.jobs)]
            store = server_store(server, data_dir)
            started = time.perf_counter()
            for start in range(0, len(documents), 1000):
                store.create_many(
                    {"kind": "TrainingJob", "name": d["TrainingJobName"],
                     "arn": d["TrainingJobArn"], "status": d["TrainingJobStatus"],
                     "parent": None, "creation_time": d["CreationTime"],
                     "last_modified_time": d["LastModifiedTime"], "document": d}
                    for d in documents[start:start + 1000])
            print(f"inserted {args.jobs} training jobs through the store in "
                  f"{time.perf_counter() - started:.1f} s")
            client = server.client("sagemaker")
            first, response = timed(lambda: client.search(**SEARCH))
            names = [item["TrainingJob"]["TrainingJobName"] for item in response["Results"]]
            expected = baseline(documents)
            assert names == expected, (names, expected)
            latencies = [timed(lambda: client.search(**SEARCH))[0] for _ in range(args.repeats)]
            baselines = [timed(lambda: baseline(documents))[0] for _ in range(args.repeats)]
            print(f"Search, {args.jobs} jobs, 2 filters + sort (boto3): first call "
                  f"{first:.1f} ms; median {statistics.median(latencies):.1f} ms, worst "
                  f"{max(latencies):.1f} ms over {args.repeats}")
            print(f"baseline, same filter+sort in Python over decoded documents: median "
                  f"{statistics.median(baselines):.1f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
