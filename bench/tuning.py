"""Tuning benchmark: ``python bench/tuning.py [search] [overhead] [--dataset D] [--seeds N]
[--trials N] [--overhead-trials N]``.

search    search efficiency at the same budget: built-in XGBoost on a dataset that ships with
          scikit-learn (``--dataset``): ``digits`` (the default: 1,797 8x8 images, 10 classes,
          ``multi:softprob``, ``validation:mlogloss`` on 540 rows) or ``cancer`` (breast
          cancer, 569 rows, ``binary:logistic``, ``validation:logloss`` on 171 rows: there
          the best configurations differ by thousandths, so which run finds the lucky one
          is much of the figure); 70/30 split, six hyperparameters, 50 rounds, the
          validation loss minimized. For each seed (``--seeds``, default 20), a Bayesian
          and a Random tuning job of ``--trials`` trials each (default 30; one trial at a time each, both jobs
          running side by side; ``RandomSeed`` 1000 + seed and seed). Figure: how many
          trials (in creation order) Bayesian needs to reach Random's final best, against
          the budget Random spent to get there (target: half or fewer, ratio <= 0.5);
          Random's own trial count to its best is shown too. A run that never reaches it
          counts as budget + 1. Median and mean over the seeds (each Bayesian run against
          the Random run of its seed), and over all pairs (each Bayesian run against every
          Random run's final best: the same quantity from the same runs, less noisy).
overhead  orchestration overhead per trial: a tuning job of ``--overhead-trials`` (default
          20) no-op script-mode trials, one at a time; its wall time (CreationTime ->
          HyperParameterTuningEndTime, from its record) minus its trials' own run times
          (TrainingStartTime -> TrainingEndTime), per trial (target: <= 100 ms). Baseline,
          same run: the same number of training jobs created by a client one after another
          (create, poll every 10 ms until Completed, next), its wall time minus the same
          jobs' own run times.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from server_process import ServerProcess  # noqa: E402

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
BUCKET = "bench-tuning"
DATASETS = {  # name -> (scikit-learn loader, static hyperparameters, objective metric)
    "digits": ("load_digits", {"objective": "multi:softprob", "num_class": "10"},
               "validation:mlogloss"),
    "cancer": ("load_breast_cancer", {"objective": "binary:logistic"}, "validation:logloss"),
}
OVERHEAD_TRIALS = 20
RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.01", "MaxValue": "0.5", "ScalingType": "Logarithmic"},
        {"Name": "min_child_weight", "MinValue": "0.1", "MaxValue": "20",
         "ScalingType": "Logarithmic"},
        {"Name": "subsample", "MinValue": "0.4", "MaxValue": "1", "ScalingType": "Linear"},
        {"Name": "colsample_bytree", "MinValue": "0.2", "MaxValue": "1", "ScalingType": "Linear"},
        {"Name": "lambda", "MinValue": "0.01", "MaxValue": "100", "ScalingType": "Logarithmic"},
    ],
    "IntegerParameterRanges": [
        {"Name": "max_depth", "MinValue": "1", "MaxValue": "10", "ScalingType": "Linear"},
    ],
}
TERMINAL = ("Completed", "Failed", "Stopped")


def resources(instance_type: str = "ml.m5.large") -> dict:
    return {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 1}


# ---------------------------------------------------------------- search efficiency

def upload_data(s3, dataset: str) -> None:
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    features, labels = getattr(sklearn.datasets, DATASETS[dataset][0])(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(features, labels, test_size=0.3,
                                                      random_state=0, stratify=labels)
    for name, x, y in (("train", x_train, y_train), ("validation", x_val, y_val)):
        lines = [",".join([str(int(label))] + [f"{value:g}" for value in row])
                 for label, row in zip(y, x)]
        s3.put_object(Bucket=BUCKET, Key=f"{dataset}/{name}/data.csv", Body="\n".join(lines) + "\n")


def search_request(name: str, strategy: str, seed: int, trials: int, dataset: str) -> dict:
    _, static, objective = DATASETS[dataset]
    channels = [{"ChannelName": channel, "ContentType": "text/csv", "DataSource": {
        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{dataset}/{channel}",
                         "S3DataDistributionType": "FullyReplicated"}}}
                for channel in ("train", "validation")]
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy, "RandomSeed": seed,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": objective},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": RANGES,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            "StaticHyperParameters": {**static, "num_round": "50", "nthread": "1"},
            "RoleArn": ROLE, "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
            "ResourceConfig": resources("ml.m5.xlarge"),
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }


def wait_tuning(client, names: list[str], poll: float = 0.5) -> dict[str, dict]:
    done: dict[str, dict] = {}
    while len(done) < len(names):
        for name in names:
            if name in done:
                continue
            description = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            if description["HyperParameterTuningJobStatus"] in TERMINAL:
                done[name] = description
        time.sleep(poll)
    return done


def trials_of(client, name: str) -> list[dict]:
    """The tuning job's trials in creation order."""
    trials, token = [], None
    while True:
        page = client.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending",
            MaxResults=100, **({"NextToken": token} if token else {}))
        trials += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return trials


def objective_values(trials: list[dict]) -> list[float]:
    """Each trial's objective, in creation order (inf for a trial without one)."""
    return [trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", float("inf"))
            for trial in trials]


def trials_to_reach(values: list[float], target: float) -> int | None:
    for index, value in enumerate(values, start=1):
        if value <= target * (1 + 1e-9):
            return index
    return None


def bench_search(server: ServerProcess, seeds: int, trials: int, dataset: str) -> None:
    client, s3 = server.client("sagemaker"), server.client("s3")
    upload_data(s3, dataset)
    needed, random_own, gaps = [], [], []
    runs: dict[str, list[list[float]]] = {"Bayesian": [], "Random": []}
    started = time.perf_counter()
    for seed in range(1, seeds + 1):
        names = {strategy: f"{dataset}-{strategy.lower()}-{seed}" for strategy in ("Bayesian", "Random")}
        for strategy, name in names.items():
            # Distinct seeds: with one seed, TPE's random start-up trials would be Random's own.
            client.create_hyper_parameter_tuning_job(**search_request(
                name, strategy, seed if strategy == "Random" else 1000 + seed, trials, dataset))
        described = wait_tuning(client, list(names.values()))
        for name, description in described.items():
            assert description["HyperParameterTuningJobStatus"] == "Completed", description
        bayes = objective_values(trials_of(client, names["Bayesian"]))
        rand = objective_values(trials_of(client, names["Random"]))
        runs["Bayesian"].append(bayes)
        runs["Random"].append(rand)
        random_best = min(rand)
        reached = trials_to_reach(bayes, random_best)
        needed.append(reached if reached is not None else trials + 1)
        random_own.append(trials_to_reach(rand, random_best))
        gaps.append(min(bayes) - random_best)
        shown = f"{reached:3d}" if reached is not None else f">{trials}"
        print(f"  seed {seed}: Random best {random_best:.5f} (at trial {random_own[-1]:2d}), "
              f"Bayesian best {min(bayes):.5f}, Bayesian reached Random's best at trial {shown}",
              flush=True)
    median_needed = statistics.median(needed)
    # Every Bayesian run against every Random run's final best (seeds x seeds pairs).
    pairs = [reached if reached is not None else trials + 1
             for bayes in runs["Bayesian"] for rand in runs["Random"]
             for reached in [trials_to_reach(bayes, min(rand))]]
    print(f"search       {dataset}, XGBoost, {trials} trials x {seeds} seeds "
          f"({time.perf_counter() - started:.0f} s): Bayesian needs a median {median_needed:g} "
          f"trials (mean {statistics.mean(needed):.1f}) to reach Random's {trials}-trial best; "
          f"ratio {median_needed / trials:.2f} of Random's budget (target <= 0.50); Random itself "
          f"found its best at trial {statistics.median(random_own):g} (median); Bayesian's final "
          f"best beats Random's in {sum(gap < 0 for gap in gaps)} of {seeds} seeds")
    print(f"search       all {len(pairs)} Bayesian x Random pairs: median "
          f"{statistics.median(pairs):g} trials (mean {statistics.mean(pairs):.1f}), ratio "
          f"{statistics.median(pairs) / trials:.2f}; not reached within {trials} in "
          f"{sum(count > trials for count in pairs)} of {len(pairs)}")


# ---------------------------------------------------------------- overhead

NOOP = 'print("score: 1")\n'


def upload_noop_source(s3) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = NOOP.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key="noop/sourcedir.tar.gz", Body=buffer.getvalue())
    return f"s3://{BUCKET}/noop/sourcedir.tar.gz"


def noop_definition(source: str) -> dict:
    return {
        "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": [{"Name": "score",
                                                          "Regex": "score: ([0-9.]+)"}]},
        "StaticHyperParameters": {"sagemaker_program": json.dumps("train.py"),
                                  "sagemaker_submit_directory": json.dumps(source)},
        "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/noop-models"},
        "ResourceConfig": resources(), "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }


def own_time(client, names: list[str]) -> float:
    total = 0.0
    for name in names:
        job = client.describe_training_job(TrainingJobName=name)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        total += (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
    return total


def tuning_overhead(client, source: str, name: str, count: int) -> float:
    client.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Random", "RandomSeed": 1,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": count,
                               "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "x", "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"}]},
        },
        TrainingJobDefinition=noop_definition(source))
    description = wait_tuning(client, [name], poll=0.05)[name]
    assert description["HyperParameterTuningJobStatus"] == "Completed", description
    wall = (description["HyperParameterTuningEndTime"] - description["CreationTime"]).total_seconds()
    trials = [trial["TrainingJobName"] for trial in trials_of(client, name)]
    assert len(trials) == count, len(trials)
    return (wall - own_time(client, trials)) / count


def direct_overhead(client, source: str, prefix: str, count: int) -> float:
    definition = noop_definition(source)
    names = [f"{prefix}-{index}" for index in range(count)]
    started = time.perf_counter()
    for index, name in enumerate(names):
        client.create_training_job(
            TrainingJobName=name, AlgorithmSpecification=definition["AlgorithmSpecification"],
            HyperParameters={**definition["StaticHyperParameters"], "x": str(index / 20)},
            RoleArn=ROLE, OutputDataConfig=definition["OutputDataConfig"],
            ResourceConfig=definition["ResourceConfig"],
            StoppingCondition=definition["StoppingCondition"])
        while client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] not in TERMINAL:
            time.sleep(0.01)
    wall = time.perf_counter() - started
    return (wall - own_time(client, names)) / count


def bench_overhead(server: ServerProcess, count: int) -> None:
    client = server.client("sagemaker")
    source = upload_noop_source(server.client("s3"))
    direct_overhead(client, source, "warmup", 3)  # first jobs load the framework's libraries
    tuning = tuning_overhead(client, source, "noop-tuning", count)
    direct = direct_overhead(client, source, "noop-direct", count)
    print(f"overhead     {count} no-op trials one at a time: tuning job "
          f"{tuning * 1000:5.0f} ms per trial over the trials' own run time (target <= 100 ms); "
          f"a client creating the same jobs one after another {direct * 1000:5.0f} ms; "
          f"ratio {tuning / direct:4.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", nargs="*", help="search, overhead (default: both)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--overhead-trials", type=int, default=OVERHEAD_TRIALS)
    args = parser.parse_args()
    which = args.which or ["search", "overhead"]
    if set(which) - {"search", "overhead"}:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(set(which) - {'search', 'overhead'}))}")
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as scratch:
        server = ServerProcess.start(Path(scratch) / "data")
        try:
            server.client("s3").create_bucket(Bucket=BUCKET)
            if "overhead" in which:
                bench_overhead(server, args.overhead_trials)
            if "search" in which:
                bench_search(server, args.seeds, args.trials, args.dataset)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
