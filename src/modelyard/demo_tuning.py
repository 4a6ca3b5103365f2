"""The demo's tuning step: search the ticket classifier's learning rate and epochs.

A ``HyperparameterTuner`` (Bayesian) runs BlazingText trials on the processed ticket
splits, two at a time, each a real training job; the demo follows the trials as they end
and prints them as a table, best marked. The best values go to the ticket pipeline's
second run (its ``LearningRate`` and ``Epochs`` parameters).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .demo import Steps

# 10 trials of 2-10 epochs: about a minute on an idle 2-core machine, estimated from a
# 10-epoch job's 7-12 s (12 trials of up to 15 epochs would take about twice as long).
TRIALS = 10
PARALLEL = 2
OBJECTIVE = "validation:accuracy"
TERMINAL = ("Completed", "Failed", "Stopped")


def tune_ticket_classifier(steps: "Steps", bucket: str, splits: dict[str, str]) -> dict[str, Any] | None:
    """Tune; returns ``{"learning_rate": float, "epochs": int}`` of the best trial, or None."""
    import sagemaker
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

    session = sagemaker.Session()
    estimator = Estimator(
        image_uri=image_uris.retrieve("blazingtext", session.boto_region_name, "latest"),
        role=sagemaker.get_execution_role(), instance_count=1, instance_type="ml.c5.xlarge",
        output_path=f"s3://{bucket}/demo/tuning", base_job_name="demo-tuning",
        hyperparameters={"mode": "supervised", "word_ngrams": 2, "vector_dim": 100,
                         "buckets": 200000},
        metric_definitions=[{"Name": OBJECTIVE, "Regex": "#validation_accuracy: ([0-9.]+)"}],
    )
    tuner = HyperparameterTuner(
        estimator, objective_metric_name=OBJECTIVE, strategy="Bayesian", random_seed=7,
        hyperparameter_ranges={
            "learning_rate": ContinuousParameter(0.01, 1.0, scaling_type="Logarithmic"),
            "epochs": IntegerParameter(2, 10),
        },
        max_jobs=TRIALS, max_parallel_jobs=PARALLEL, base_tuning_job_name="demo-tickets")
    best: dict[str, Any] = {}

    def tune() -> str:
        tuner.fit({"train": splits["train"], "validation": splits["validation"]},
                  wait=False)
        name = tuner.latest_tuning_job.name
        description = _follow_tuning(name)
        if description["HyperParameterTuningJobStatus"] != "Completed":
            raise SystemExit(f"tuning job {name} ended {description['HyperParameterTuningJobStatus']}: "
                             f"{description.get('FailureReason')}")
        trials = _trials(name)
        print(trials_table(trials, description.get("BestTrainingJob", {}).get("TrainingJobName")))
        winner = description["BestTrainingJob"]
        values = winner["TunedHyperParameters"]
        best.update(learning_rate=round(float(values["learning_rate"]), 4),
                    epochs=int(values["epochs"]))
        accuracy = winner["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        return (f"best of {len(trials)}: learning rate {best['learning_rate']:g}, "
                f"{best['epochs']} epochs, {OBJECTIVE} {accuracy:.3f}")

    steps.run(f"tune learning rate and epochs (Bayesian, {TRIALS} trials, {PARALLEL} at a time)",
              tune, str)
    return best or None


def _follow_tuning(name: str) -> dict:
    """Print each trial as it ends, until the tuning job does."""
    import boto3

    client = boto3.client("sagemaker")
    shown: set[str] = set()
    while True:
        description = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        for trial in _trials(name):
            if trial["TrainingJobStatus"] in TERMINAL and trial["TrainingJobName"] not in shown:
                shown.add(trial["TrainingJobName"])
                values = trial["TunedHyperParameters"]
                print(f"      trial {len(shown):2d}: learning rate "
                      f"{float(values['learning_rate']):.4f}, {int(values['epochs']):2d} epochs -> "
                      f"{_objective(trial)}", flush=True)
        if description["HyperParameterTuningJobStatus"] in TERMINAL:
            return description
        time.sleep(0.5)


def _trials(name: str) -> list[dict]:
    import boto3

    return boto3.client("sagemaker").list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending",
        MaxResults=100)["TrainingJobSummaries"]


def _objective(trial: dict) -> str:
    metric = trial.get("FinalHyperParameterTuningJobObjectiveMetric")
    return f"{metric['Value']:.3f}" if metric else trial["TrainingJobStatus"]


def trials_table(trials: list[dict], best_name: str | None) -> str:
    """The trials in the order they started, the best one marked."""
    headers = ("trial", "learning rate", "epochs", "status", "accuracy", "")
    rows = []
    for trial in trials:
        values = trial["TunedHyperParameters"]
        seconds = ""
        if trial.get("TrainingStartTime") and trial.get("TrainingEndTime"):
            seconds = f"{(trial['TrainingEndTime'] - trial['TrainingStartTime']).total_seconds():.1f}s"
        rows.append((trial["TrainingJobName"], f"{float(values['learning_rate']):.4f}",
                     str(int(values["epochs"])), f"{trial['TrainingJobStatus']} {seconds}".strip(),
                     _objective(trial), "<- best" if trial["TrainingJobName"] == best_name else ""))
    widths = [max(len(header), *(len(row[index]) for row in rows))
              for index, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip(),
             "  ".join("-" * width for width in widths[:-1])]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in rows]
    return "\n".join("      " + line for line in lines)
