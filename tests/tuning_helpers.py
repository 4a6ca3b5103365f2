"""Helpers for tuning tests: a tiny scikit-learn script-mode trainer that prints a score per
epoch, estimators and tuners bound to the test server, and waiting on tuning jobs."""

from __future__ import annotations

import time
from pathlib import Path

METRIC = [{"Name": "score", "Regex": r"score=([-0-9.]+)"}]

# The score rises linearly over the epochs to its final value, which depends on the
# hyperparameters; --fail-kind makes one category fail, --pause paces the epochs.
SCRIPT = '''
import argparse, math, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--quality", type=float, default=0.5)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--depth", type=int, default=3)
parser.add_argument("--kind", default="a")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--pause", type=float, default=0.0)
parser.add_argument("--fail-kind", default="")
args, _ = parser.parse_known_args()
if args.kind == args.fail_kind:
    sys.exit("ValueError: this kind always fails")
final = (args.quality + {"a": 0.0, "b": 0.1, "c": 0.2}.get(args.kind, 0.0) + args.depth / 100.0
         - abs(math.log10(args.lr) + 2.0) / 10.0)
for epoch in range(args.epochs):
    print(f"epoch={epoch} score={final * (epoch + 1) / args.epochs:.6f}", flush=True)
    time.sleep(args.pause)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as handle:
    handle.write(repr(vars(args)))
'''

ROLE = "arn:aws:iam::000000000000:role/ModelyardExecutionRole"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def fresh_name(prefix: str = "tune") -> str:
    """A tuning job name no other test uses (the SDK's default has minute resolution)."""
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def estimator(session, directory: Path, **hyperparameters):  # noqa: ANN001, ANN201
    from sagemaker.sklearn.estimator import SKLearn

    script = directory / "train.py"
    if not script.exists():
        script.write_text(SCRIPT)
    bucket = session.default_bucket()
    return SKLearn(entry_point=str(script), framework_version="1.2-1", role=ROLE,
                   instance_count=1, instance_type="ml.m5.large",
                   output_path=f"s3://{bucket}/tuning-tests", sagemaker_session=session,
                   hyperparameters=hyperparameters)


def tuner(estimator, ranges: dict, **options):  # noqa: ANN001, ANN201
    from sagemaker.tuner import HyperparameterTuner

    return HyperparameterTuner(estimator, "score", ranges, metric_definitions=METRIC,
                               **options)


def wait_tuning(client, name: str, wanted=("Completed", "Stopped", "Failed"),
                timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if description["HyperParameterTuningJobStatus"] in wanted:
            return description
        if time.monotonic() > deadline:
            raise AssertionError(f"tuning job {name} still "
                                 f"{description['HyperParameterTuningJobStatus']} after {timeout}s:"
                                 f" {description['TrainingJobStatusCounters']}")
        time.sleep(0.25)


def wait_counters(client, name: str, ready, timeout: float = 300) -> dict:
    """Poll until ``ready(description)`` holds, e.g. enough trials completed."""
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if ready(description):
            return description
        if time.monotonic() > deadline:
            raise AssertionError(f"tuning job {name}: condition not met after {timeout}s: "
                                 f"{description['TrainingJobStatusCounters']}")
        time.sleep(0.2)


def trials(client, name: str) -> list[dict]:
    summaries, token = [], None
    while True:
        page = client.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100,
            **({"NextToken": token} if token else {}))
        summaries += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return summaries


def by_ordinal(summaries: list[dict]) -> list[dict]:
    """Trials in launch order (their names end in -<NNN>-<hash>)."""
    return sorted(summaries, key=lambda item: item["TrainingJobName"].rsplit("-", 2)[-2])


def definition(**overrides) -> dict:
    """A TrainingJobDefinition for boto3 requests (the script need not exist to be refused)."""
    base = {
        "StaticHyperParameters": {"sagemaker_program": '"train.py"',
                                  "sagemaker_submit_directory": '"s3://nowhere/src.tar.gz"'},
        "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://nowhere/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    base.update(overrides)
    return base
