"""A tuning job survives kill -9: after a restart it goes on to its job limit without running
a finished trial again (its study is rebuilt from the trials recorded in the store)."""

from __future__ import annotations

import os

from jobs_helpers import sdk_session
from server_process import ServerProcess
from tuning_helpers import estimator, fresh_name, trials, tuner, wait_counters, wait_tuning


def test_kill_9_mid_tuning_resumes_to_the_job_limit_without_rerunning_trials(tmp_path):
    from sagemaker.tuner import ContinuousParameter, IntegerParameter

    data = tmp_path / "data"
    offset = tmp_path / "clock-offset"
    server = ServerProcess.start(data, MODELYARD_CLOCK_OFFSET_FILE=str(offset))
    saved = dict(os.environ)
    os.environ.update(server.client_env())
    try:
        session = sdk_session()
        job = tuner(estimator(session, tmp_path, epochs=3, pause=0.3),
                    {"quality": ContinuousParameter(0.0, 1.0), "depth": IntegerParameter(1, 9)},
                    strategy="Bayesian", max_jobs=6, max_parallel_jobs=2, random_seed=21)
        name = fresh_name()
        job.fit(wait=False, job_name=name)
        client = server.client("sagemaker")
        wait_counters(client, name,
                      lambda d: d["TrainingJobStatusCounters"]["Completed"] >= 2)
        before = {item["TrainingJobName"]: item for item in trials(client, name)}
        server.kill()

        server = ServerProcess.start(data, port=server.port,
                                     MODELYARD_CLOCK_OFFSET_FILE=str(offset))
        client = server.client("sagemaker")
        description = wait_tuning(client, name)
        assert description["HyperParameterTuningJobStatus"] == "Completed"
        assert description["TrainingJobStatusCounters"]["Completed"] == 6
        after = {item["TrainingJobName"]: item for item in trials(client, name)}
        assert len(after) == 6  # the limit: no trial lost, none launched twice
        for job_name, item in before.items():
            if item["TrainingJobStatus"] == "Completed":
                # A finished trial was not run again: same end, same result.
                assert after[job_name]["TrainingEndTime"] == item["TrainingEndTime"]
                assert after[job_name]["FinalHyperParameterTuningJobObjectiveMetric"] == \
                    item["FinalHyperParameterTuningJobObjectiveMetric"]
        tuned = [tuple(sorted(item["TunedHyperParameters"].items())) for item in after.values()]
        assert len(set(tuned)) == 6  # the resumed study did not propose its first points again

        # MaxRuntimeInSeconds, on the server clock: running trials stop, the job ends.
        slow = tuner(estimator(session, tmp_path, epochs=600, pause=0.2),
                     {"quality": ContinuousParameter(0.0, 1.0)}, strategy="Random",
                     max_jobs=10, max_parallel_jobs=2, max_runtime_in_seconds=120)
        name = fresh_name()
        slow.fit(wait=False, job_name=name)
        wait_counters(client, name, lambda d: any(
            item.get("TrainingStartTime") for item in trials(client, name)))
        moved = tmp_path / "clock-offset.tmp"
        moved.write_text("300")
        os.replace(moved, offset)
        description = wait_tuning(client, name)
        assert description["HyperParameterTuningJobStatus"] == "Completed"
        counters = description["TrainingJobStatusCounters"]
        assert counters["Completed"] == 0 and counters["InProgress"] == 0
        assert 1 <= counters["Stopped"] <= 2
        assert description["ConsumedResources"]["RuntimeInSeconds"] >= 300
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
