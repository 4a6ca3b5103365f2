"""Hyperparameter tuning jobs through the SageMaker SDK's HyperparameterTuner: every trial a
real scikit-learn script-mode training job, the search done by Optuna."""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import sdk_session
from server_process import ServerProcess
from tuning_helpers import (
    by_ordinal, definition, estimator, fresh_name, trials, tuner, wait_counters, wait_tuning,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess.start(tmp_path_factory.mktemp("tuning-data"))
    saved = dict(os.environ)
    os.environ.update(process.client_env())
    yield process
    process.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def session(server):
    return sdk_session()


@pytest.fixture(scope="module")
def client(server):
    return server.client("sagemaker")


@pytest.fixture(scope="module")
def random_parent(server, session, client, tmp_path_factory):
    """A finished Random tuning job over one continuous parameter (the warm-start parent)."""
    from sagemaker.tuner import ContinuousParameter

    job = tuner(estimator(session, tmp_path_factory.mktemp("parent")),
                {"quality": ContinuousParameter(0.0, 1.0)},
                strategy="Random", max_jobs=8, max_parallel_jobs=3, random_seed=11)
    job.fit(wait=False, job_name=fresh_name())
    name = job.latest_tuning_job.name
    return job, wait_tuning(client, name)


def test_random_search_is_reproducible_stays_in_bounds_and_reports_through_the_sdk(
        session, client, tmp_path):
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, IntegerParameter

    ranges = {
        "lr": ContinuousParameter(1e-4, 1e-1, scaling_type="Logarithmic"),
        "depth": IntegerParameter(2, 9),
        "quality": ContinuousParameter(0.9, 0.999, scaling_type="ReverseLogarithmic"),
        "kind": CategoricalParameter(["a", "b", "c"]),
    }
    names = []
    for _ in range(2):
        job = tuner(estimator(session, tmp_path, epochs=2), ranges, strategy="Random",
                    max_jobs=5, max_parallel_jobs=3, random_seed=1234)
        job.fit(wait=False, job_name=fresh_name())
        names.append(job.latest_tuning_job.name)
    first, second = (wait_tuning(client, name) for name in names)
    job.wait()  # the SDK's own wait (it polls every 5 s) sees Completed at once
    for description in (first, second):
        assert description["HyperParameterTuningJobStatus"] == "Completed"
        assert description["TrainingJobStatusCounters"]["Completed"] == 5
        assert description["ObjectiveStatusCounters"] == {"Succeeded": 5, "Pending": 0, "Failed": 0}
    runs = [by_ordinal(trials(client, name)) for name in names]
    assert [item["TunedHyperParameters"] for item in runs[0]] == \
        [item["TunedHyperParameters"] for item in runs[1]]  # the same seed, the same trials
    for item in runs[0]:
        tuned = item["TunedHyperParameters"]
        assert 1e-4 <= float(tuned["lr"]) <= 1e-1
        assert tuned["depth"] == str(int(tuned["depth"])) and 2 <= int(tuned["depth"]) <= 9
        assert 0.9 <= float(tuned["quality"]) <= 0.999
        assert tuned["kind"] in ('"a"', '"b"', '"c"')
    assert len({item["TunedHyperParameters"]["lr"] for item in runs[0]}) == 5

    # The best job is the one whose final (last emitted) objective is highest.
    values = {item["TrainingJobName"]: item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
              for item in runs[1]}
    best = max(values, key=values.get)
    assert job.best_training_job() == best == second["BestTrainingJob"]["TrainingJobName"]
    ordered = client.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=names[1], SortBy="FinalObjectiveMetricValue",
        SortOrder="Descending", MaxResults=2)
    assert [item["TrainingJobName"] for item in ordered["TrainingJobSummaries"]] == \
        sorted(values, key=values.get, reverse=True)[:2]
    assert "NextToken" in ordered
    frame = job.analytics().dataframe()
    assert len(frame) == 5 and frame["FinalObjectiveValue"].max() == pytest.approx(values[best])

    trial = client.describe_training_job(TrainingJobName=best)
    assert trial["TuningJobArn"] == second["HyperParameterTuningJobArn"]
    assert trial["HyperParameters"]["_tuning_objective_metric"] == "score"
    assert trial["HyperParameters"]["lr"] == second["BestTrainingJob"]["TunedHyperParameters"]["lr"]
    final = {item["MetricName"]: item["Value"] for item in trial["FinalMetricDataList"]}
    assert final["score"] == pytest.approx(values[best])
    assert job.best_estimator().hyperparameters()["lr"] == trial["HyperParameters"]["lr"]

    listed = client.list_hyper_parameter_tuning_jobs(NameContains=names[1])
    assert [item["HyperParameterTuningJobName"] for item in
            listed["HyperParameterTuningJobSummaries"]] == [names[1]]
    assert listed["HyperParameterTuningJobSummaries"][0]["Strategy"] == "Random"
    client.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName=names[0])
    with pytest.raises(ClientError):
        client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=names[0])


def test_grid_runs_exactly_the_product_of_the_categories(session, client, tmp_path):
    from sagemaker.tuner import CategoricalParameter

    job = tuner(estimator(session, tmp_path), {"kind": CategoricalParameter(["a", "b", "c"]),
                                               "depth": CategoricalParameter([1, 5])},
                strategy="Grid", max_jobs=6, max_parallel_jobs=3)
    job.fit(wait=False, job_name=fresh_name())
    description = wait_tuning(client, job.latest_tuning_job.name)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    summaries = trials(client, job.latest_tuning_job.name)
    combinations = sorted((item["TunedHyperParameters"]["kind"],
                           item["TunedHyperParameters"]["depth"]) for item in summaries)
    assert combinations == sorted((f'"{kind}"', depth) for kind in "abc" for depth in ('"1"', '"5"'))
    best = description["BestTrainingJob"]["TunedHyperParameters"]
    assert (best["kind"], best["depth"]) == ('"c"', '"5"')


def test_early_stopping_auto_stops_a_bad_trial_before_its_last_epoch(session, client, tmp_path):
    from sagemaker.tuner import ContinuousParameter

    epochs = 8
    # Seed 8 draws quality 0.873, 0.969, 0.869, 0.531, 0.233, 0.011, 0.43: the last ones are
    # far below the median of the first, at any epoch they are compared.
    job = tuner(estimator(session, tmp_path, epochs=epochs, pause=0.5),
                {"quality": ContinuousParameter(0.0, 1.0)}, strategy="Random", max_jobs=7,
                max_parallel_jobs=3, random_seed=8, early_stopping_type="Auto")
    job.fit(wait=False, job_name=fresh_name())
    name = job.latest_tuning_job.name
    description = wait_tuning(client, name)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    stopped = [item for item in trials(client, name) if item["TrainingJobStatus"] == "Stopped"]
    assert stopped and description["TrainingJobStatusCounters"]["Stopped"] == len(stopped)
    assert description["TrainingJobStatusCounters"]["Completed"] + len(stopped) == 7
    assert any(float(item["TunedHyperParameters"]["quality"]) < 0.05 for item in stopped)
    for item in stopped:
        # The score rises to quality + 0.03 (the script's default depth 3 adds 0.03) at the
        # last epoch: a stopped trial never got there, whichever epoch it was stopped at.
        quality = float(item["TunedHyperParameters"]["quality"])
        assert item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] < quality + 0.03 - 1e-6
        assert quality < description["BestTrainingJob"][
            "FinalHyperParameterTuningJobObjectiveMetric"]["Value"]


def test_warm_start_seeds_the_child_with_the_parents_trials(session, client, tmp_path,
                                                            random_parent):
    from sagemaker.tuner import ContinuousParameter, WarmStartConfig, WarmStartTypes

    parent, parent_description = random_parent
    parent_best = parent_description["BestTrainingJob"]
    runs = {}
    for warm in (True, False):
        child = tuner(estimator(session, tmp_path), {"quality": ContinuousParameter(0.0, 1.0)},
                      strategy="Bayesian", max_jobs=2, max_parallel_jobs=1, random_seed=3,
                      warm_start_config=WarmStartConfig(
                          WarmStartTypes.IDENTICAL_DATA_AND_ALGORITHM,
                          parents={parent.latest_tuning_job.name}) if warm else None)
        child.fit(wait=False, job_name=fresh_name())
        runs[warm] = wait_tuning(client, child.latest_tuning_job.name)
    warm_run, cold_run = runs[True], runs[False]
    assert warm_run["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"
    # Informed by eight parent trials, TPE's first proposals are model-based: near the
    # parent's best, not random draws as in the cold start.
    warm_best = warm_run["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    cold_best = cold_run["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    parent_value = parent_best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert warm_best >= parent_value - 0.1
    assert warm_best > cold_best
    overall = warm_run["OverallBestTrainingJob"]
    expected = parent_best if parent_value > warm_best else warm_run["BestTrainingJob"]
    assert overall["TrainingJobName"] == expected["TrainingJobName"]
    assert "OverallBestTrainingJob" not in cold_run


def test_stop_mid_way_stops_running_trials_with_right_counters(session, client, tmp_path):
    from sagemaker.tuner import ContinuousParameter

    job = tuner(estimator(session, tmp_path, epochs=200, pause=0.2),
                {"quality": ContinuousParameter(0.0, 1.0)}, strategy="Random", max_jobs=10,
                max_parallel_jobs=2)
    job.fit(wait=False, job_name=fresh_name())
    name = job.latest_tuning_job.name
    # Both parallel trials running (on a loaded machine the second may start later).
    wait_counters(client, name, lambda d: sum(
        1 for item in trials(client, name) if item.get("TrainingStartTime")) >= 2)
    job.stop_tuning_job()
    description = wait_tuning(client, name)
    assert description["HyperParameterTuningJobStatus"] == "Stopped"
    summaries = trials(client, name)
    assert len(summaries) == 2
    assert {item["TrainingJobStatus"] for item in summaries} == {"Stopped"}
    assert description["TrainingJobStatusCounters"] == {
        "Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0,
        "Stopped": 2}
    assert description["ObjectiveStatusCounters"]["Pending"] == 0
    for item in summaries:
        assert client.describe_training_job(
            TrainingJobName=item["TrainingJobName"])["TrainingJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as error:
        client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_failed_trials_count_as_non_retryable_and_multi_algorithm_create(
        session, client, tmp_path):
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner

    first = estimator(session, tmp_path, **{"fail-kind": "b"})
    second = estimator(session, tmp_path, depth=9)
    job = HyperparameterTuner.create(
        estimator_dict={"first": first, "second": second},
        objective_metric_name_dict={"first": "score", "second": "score"},
        hyperparameter_ranges_dict={
            "first": {"kind": CategoricalParameter(["a", "b"])},
            "second": {"quality": ContinuousParameter(0.0, 1.0)}},
        metric_definitions_dict={"first": [{"Name": "score", "Regex": r"score=([-0-9.]+)"}],
                                 "second": [{"Name": "score", "Regex": r"score=([-0-9.]+)"}]},
        strategy="Random", max_jobs=8, max_parallel_jobs=3, random_seed=2)
    job.fit(include_cls_metadata={}, wait=False, job_name=fresh_name())
    name = job.latest_tuning_job.name
    description = wait_tuning(client, name)
    summaries = trials(client, name)
    assert len(summaries) == 8
    definitions = {item["TrainingJobDefinitionName"] for item in summaries}
    assert definitions == {"first", "second"}
    failed = [item for item in summaries if item["TrainingJobStatus"] == "Failed"]
    assert all(item["TrainingJobDefinitionName"] == "first"
               and item["TunedHyperParameters"]["kind"] == '"b"' for item in failed)
    assert failed and all("this kind always fails" in item["FailureReason"] for item in failed)
    counters = description["TrainingJobStatusCounters"]
    assert counters["NonRetryableError"] == len(failed) and counters["RetryableError"] == 0
    assert description["ObjectiveStatusCounters"]["Failed"] == len(failed)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    for item in summaries:
        tuned = item["TunedHyperParameters"]
        assert set(tuned) == ({"kind"} if item["TrainingJobDefinitionName"] == "first"
                              else {"quality"})


def test_hyperband_stops_trials_on_intermediate_values(session, client, tmp_path):
    from sagemaker.tuner import ContinuousParameter, HyperbandStrategyConfig, StrategyConfig

    job = tuner(estimator(session, tmp_path, epochs=9, pause=0.3),
                {"quality": ContinuousParameter(0.0, 1.0)}, strategy="Hyperband",
                max_jobs=6, max_parallel_jobs=3, random_seed=8,
                strategy_config=StrategyConfig(HyperbandStrategyConfig(max_resource=9, min_resource=1)))
    job.fit(wait=False, job_name=fresh_name())
    name = job.latest_tuning_job.name
    description = wait_tuning(client, name)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    counters = description["TrainingJobStatusCounters"]
    assert counters["Completed"] + counters["Stopped"] == 6 and counters["Stopped"] >= 1


def _create(client, name: str, config: dict, **request):
    return client.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
            **config},
        **({"TrainingJobDefinition": definition()} if not request else request))


@pytest.mark.parametrize("config, request_members, named", [
    ({"ParameterRanges": {"ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0", "MaxValue": "0.1", "ScalingType": "Logarithmic"}]}},
     {}, "lr"),
    ({"Strategy": "Grid", "ResourceLimits": {"MaxParallelTrainingJobs": 1}, "ParameterRanges": {
        "ContinuousParameterRanges": [{"Name": "quality", "MinValue": "0", "MaxValue": "1"}]}},
     {}, "quality"),
    ({"HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "accuracy"},
      "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "kind", "Values": ["a"]}]}},
     {}, "accuracy"),
    ({"ParameterRanges": {"IntegerParameterRanges": [
        {"Name": "depth", "MinValue": "1", "MaxValue": "5", "ScalingType": "ReverseLogarithmic"}]}},
     {}, "depth"),
    ({"Strategy": "Hyperband", "ParameterRanges": {"CategoricalParameterRanges": [
        {"Name": "kind", "Values": ["a"]}]}}, {}, "MaxResource"),
    ({"Strategy": "Grid", "ResourceLimits": {"MaxNumberOfTrainingJobs": 5,
                                              "MaxParallelTrainingJobs": 1},
      "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]}]}},
     {}, "MaxNumberOfTrainingJobs"),
    ({"ParameterRanges": {"CategoricalParameterRanges": [{"Name": "kind", "Values": ["a"]}]}},
     {"TrainingJobDefinition": definition(),
      "WarmStartConfig": {"ParentHyperParameterTuningJobs": [
          {"HyperParameterTuningJobName": "no-such-parent"}],
          "WarmStartType": "TransferLearning"}}, "no-such-parent"),
])
def test_bad_input_is_a_validation_exception_naming_it(client, unique_name, config,
                                                       request_members, named):
    with pytest.raises(ClientError) as error:
        _create(client, unique_name[:32], config, **request_members)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert named in error.value.response["Error"]["Message"]
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError):
        client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=unique_name[:32])


def test_warm_start_refuses_a_changed_objective(client, unique_name, random_parent):
    parent, _ = random_parent
    with pytest.raises(ClientError) as error:
        _create(client, unique_name[:32], {
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "score"},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "quality", "MinValue": "0", "MaxValue": "1"}]}},
            TrainingJobDefinition=definition(),
            WarmStartConfig={"ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent.latest_tuning_job.name}],
                "WarmStartType": "TransferLearning"})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "objective" in error.value.response["Error"]["Message"]


def test_completion_criteria_end_the_job_early(session, client, tmp_path):
    from sagemaker.tuner import (
        CategoricalParameter, ContinuousParameter, TuningJobCompletionCriteriaConfig,
    )

    # Every trial reaches the target: the job ends after the first, not at its limit.
    target = tuner(estimator(session, tmp_path), {"quality": ContinuousParameter(0.6, 1.0)},
                   strategy="Random", max_jobs=20, max_parallel_jobs=1,
                   completion_criteria_config=TuningJobCompletionCriteriaConfig(
                       target_objective_metric_value=0.5))
    target.fit(wait=False, job_name=fresh_name())
    # Every trial scores the same: 3 trials after the first do not improve it by 1%.
    flat = tuner(estimator(session, tmp_path), {"kind": CategoricalParameter(["a"])},
                 strategy="Random", max_jobs=20, max_parallel_jobs=1,
                 completion_criteria_config=TuningJobCompletionCriteriaConfig(
                     max_number_of_training_jobs_not_improving=3))
    flat.fit(wait=False, job_name=fresh_name())
    reached = wait_tuning(client, target.latest_tuning_job.name)
    assert reached["HyperParameterTuningJobStatus"] == "Completed"
    assert reached["TrainingJobStatusCounters"]["Completed"] == 1
    assert reached["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] >= 0.5
    stalled = wait_tuning(client, flat.latest_tuning_job.name)
    assert stalled["HyperParameterTuningJobStatus"] == "Completed"
    assert stalled["TrainingJobStatusCounters"]["Completed"] == 4
    assert stalled["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3
