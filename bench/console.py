"""Console page times with many stored resources: ``python bench/console.py [--count 10000]``.

Starts a modelyard server (temporary data directory) and inserts ``--count`` training
jobs (the documents of bench/search.py), ``--count`` processing jobs and ``--count``
pipelines (each with the ticket pipeline's definition) DIRECTLY through the resource
store, as those benchmarks do (running 10,000 real jobs would take hours). Then signs in to
the console over HTTP and times, ``--repeats`` times each: the pipelines list, the
training jobs list, the jobs list filtered by status and name, its second page, a pipeline
and the home page. Prints the median and worst of the server's own time (the
``Server-Timing`` header: the handler, i.e. List operation + rendering) and of the time
the client waited for the whole response.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import requests  # noqa: E402
from search import ACCOUNT, server_store, training_document  # noqa: E402
from server_process import ACCESS_KEY, SECRET_KEY, ServerProcess  # noqa: E402

from modelyard.store.resources import ResourceStore  # noqa: E402

DEFINITION = (HERE.parent / "tests" / "data" / "ticket_pipeline_definition.json").read_text()


def processing_document(index: int, now: float) -> dict:
    name = f"bench-processing-{index:05d}"
    created = now - 86400 + index
    return {
        "ProcessingJobName": name,
        "ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:processing-job/{name}",
        "ProcessingJobStatus": "Completed", "CreationTime": created,
        "LastModifiedTime": created + 30, "ProcessingStartTime": created + 2,
        "ProcessingEndTime": created + 30,
        "AppSpecification": {"ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/"
                                         "sagemaker-scikit-learn:1.2-1-cpu-py3"},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1,
                                                  "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30}},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/ModelyardExecutionRole",
    }


def pipeline_document(index: int, now: float) -> dict:
    name = f"bench-pipeline-{index:05d}"
    created = now - 86400 + index
    return {
        "PipelineArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{name}",
        "PipelineName": name, "PipelineDisplayName": name, "PipelineDefinition": DEFINITION,
        "PipelineDescription": f"Pipeline number {index}", "PipelineStatus": "Active",
        "CreationTime": created, "LastModifiedTime": created, "PipelineVersionId": 1,
        "Tags": [],
    }


def insert(store: ResourceStore, kind: str, documents: list[dict], name_key: str,
           arn_key: str, status_key: str | None) -> None:
    for start in range(0, len(documents), 1000):
        store.create_many(
            {"kind": kind, "name": d[name_key], "arn": d[arn_key],
             "status": d[status_key] if status_key else "Active", "parent": None,
             "creation_time": d["CreationTime"], "last_modified_time": d["LastModifiedTime"],
             "document": d}
            for d in documents[start:start + 1000])


def sign_in(base: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/console/signin").text
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    answer = session.post(f"{base}/console/signin", allow_redirects=False, data={
        "token": token, "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY})
    assert answer.status_code == 303, answer.text
    return session


def measure(session: requests.Session, url: str, repeats: int) -> tuple[list[float], list[float]]:
    server_ms, client_ms = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = session.get(url, allow_redirects=False)
        client_ms.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (url, answer.status_code)
        server_ms.append(float(answer.headers["server-timing"].split("dur=")[1]))
    return server_ms, client_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server = ServerProcess.start(Path(data_dir), MODELYARD_ACCOUNT_ID=ACCOUNT)
        try:
            rng = random.Random(7)
            now = time.time()
            store = server_store(server, data_dir)
            started = time.perf_counter()
            insert(store, "TrainingJob", [training_document(i, rng, now)
                                          for i in range(args.count)],
                   "TrainingJobName", "TrainingJobArn", "TrainingJobStatus")
            insert(store, "ProcessingJob", [processing_document(i, now)
                                            for i in range(args.count)],
                   "ProcessingJobName", "ProcessingJobArn", "ProcessingJobStatus")
            insert(store, "Pipeline", [pipeline_document(i, now) for i in range(args.count)],
                   "PipelineName", "PipelineArn", None)
            print(f"inserted {args.count} training jobs, {args.count} processing jobs and "
                  f"{args.count} pipelines in {time.perf_counter() - started:.1f} s")
            base = server.endpoint_url
            session = sign_in(base)
            jobs = session.get(f"{base}/console/jobs").text
            second = re.search(r'href="(/console/jobs\?[^"]*token=[^"]+)"', jobs)
            pages = [
                ("pipelines list", "/console/pipelines"),
                ("training jobs list", "/console/jobs"),
                ("jobs, status + name filter", "/console/jobs?type=training&status=Failed"
                                               "&name=job-09"),
                ("jobs, second page", second.group(1).replace("&amp;", "&")),
                ("processing jobs list", "/console/jobs?type=processing"),
                ("one pipeline (DAG)", "/console/pipelines/bench-pipeline-00042"),
                ("home", "/console/"),
            ]
            print(f"{'page':30} {'server median':>14} {'worst':>8} {'client median':>14}")
            for label, path in pages:
                server_ms, client_ms = measure(session, base + path, args.repeats)
                print(f"{label:30} {statistics.median(server_ms):11.1f} ms "
                      f"{max(server_ms):5.1f} ms {statistics.median(client_ms):11.1f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
