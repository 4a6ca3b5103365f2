"""Model Monitor profiling benchmark: ``python bench/monitor_profile.py [--rows 1000000]``.

One frame of ``--rows`` rows x 20 columns (12 numeric: normal, lognormal, integer counts,
1% missing in some; 8 categorical strings with 3 to 200 values, 1% missing in some),
generated once from a fixed seed and saved as plain numpy arrays, so every tool profiles
the same data. Measured in the same run, each on one core's worth of work:

- modelyard's analyzer in process (``data_quality.profile``: inferred types, counts, mean /
  sum / std / min / max, DataSketches KLL + 10 buckets, categorical counts, the
  statistics.json document), and a monitoring comparison (profile the frame again and check
  it against the first profile's statistics and suggested constraints: every
  constraint_check_type including both drift distances);
- optionally (``--job``) the same profiling as a real processing job on the model-monitor
  image through the SageMaker SDK (suggest_baseline on the frame as CSV; includes reading
  the CSV in the job), against a temporary modelyard server;
- whylogs 1.6.4 ``why.log(frame)`` (profile) and Evidently 0.7.23's data-drift report
  (``Report([DataDriftPreset()]).run(reference, current)`` with both the frame), in a side
  virtualenv: both need numpy < 2 and pandas < 3 (whylogs uses ``np.unicode_``, Evidently
  ``pandas...infer_dtype_from_object``), which conflict with modelyard's pins (numpy 2.4.6,
  pandas 3.1.1), so the benchmark builds ``~/.cache/modelyard-bench/monitor-compare`` with
  uv (numpy 1.26.4, pandas 2.2.3) the first time.

Reported as rows/s of the profiled frame (wall time, best of ``--repeats``). Evidently's
report profiles both frames it is given; its rows/s counts the current frame only, as a
monitoring run does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests"))

SIDE_VENV = Path.home() / ".cache" / "modelyard-bench" / "monitor-compare"
SIDE_PACKAGES = ["numpy==1.26.4", "pandas==2.2.3", "whylogs==1.6.4", "evidently==0.7.23"]


def make_columns(rows: int, seed: int = 7) -> dict[str, np.ndarray]:
    """20 columns: float arrays (NaN = missing) and unicode arrays ('' = missing)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(4):
        columns[f"normal_{i}"] = rng.normal(100.0 * (i + 1), 15.0, rows)
    for i in range(4):
        columns[f"lognormal_{i}"] = rng.lognormal(3.0, 0.5 + 0.1 * i, rows)
    for i in range(4):
        columns[f"count_{i}"] = rng.poisson(5 * (i + 1), rows).astype(np.float64)
    for name in ("normal_0", "lognormal_1", "count_2"):
        columns[name][rng.random(rows) < 0.01] = np.nan
    sizes = [3, 5, 8, 12, 20, 50, 100, 200]
    for i, size in enumerate(sizes):
        values = np.array([f"cat{i}_{v:03d}" for v in range(size)])
        weights = rng.dirichlet(np.ones(size))
        column = values[rng.choice(size, rows, p=weights)]
        if i % 3 == 0:
            column[rng.random(rows) < 0.01] = ""
        columns[f"category_{i}"] = column
    return columns


_SIDE_SCRIPT = r"""
import json, sys, time
import numpy as np, pandas as pd
data = np.load(sys.argv[1])
frame = pd.DataFrame({name: (data[name].astype(object) if data[name].dtype.kind == "U"
                             else data[name]) for name in data.files})
for name in frame.columns:
    if frame[name].dtype == object:
        frame[name] = frame[name].where(frame[name] != "", None)
repeats = int(sys.argv[2])
results = {}
import whylogs as why
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    view = why.log(frame).view()
    best = min(best, time.perf_counter() - start)
results["whylogs"] = best
from evidently import Report
from evidently.presets import DataDriftPreset
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(reference_data=frame, current_data=frame)
    snapshot.dict()
    best = min(best, time.perf_counter() - start)
results["evidently"] = best
print(json.dumps(results))
"""


def ensure_side_venv() -> Path:
    python = SIDE_VENV / "bin" / "python"
    check = [str(python), "-c", "import whylogs, evidently"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "venv", "--python", sys.executable, str(SIDE_VENV)], check=True)
    subprocess.run([str(uv), "pip", "install", "--python", str(python), *SIDE_PACKAGES],
                   check=True)
    return python


def modelyard_in_process(columns: dict[str, np.ndarray], repeats: int) -> dict[str, float]:
    import pandas as pd

    from modelyard.monitor.analyzer.constraints import constraints_document
    from modelyard.monitor.analyzer.data_quality import profile
    from modelyard.monitor.analyzer.statistics_json import dumps
    from modelyard.monitor.analyzer.violations import compare

    frame = pd.DataFrame({name: (pd.array(values, dtype="str") if values.dtype.kind == "U"
                                 else values) for name, values in columns.items()})
    for name in frame.columns:
        if frame[name].dtype == "str":
            frame[name] = frame[name].where(frame[name] != "", None)
    best_profile = best_compare = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        profiles, statistics = profile(frame)
        constraints = constraints_document(profiles)
        dumps(statistics)
        best_profile = min(best_profile, time.perf_counter() - start)
        baseline_statistics = json.loads(json.dumps(statistics))
        start = time.perf_counter()
        current, _ = profile(frame)
        result = compare(current, baseline_statistics, constraints)
        best_compare = min(best_compare, time.perf_counter() - start)
        assert not result.violations, result.violations[:3]
    return {"modelyard": best_profile, "modelyard_compare": best_compare}


def modelyard_job(columns: dict[str, np.ndarray], workdir: Path) -> float:
    """suggest_baseline on the frame as CSV, on a temporary server: wall seconds."""
    import pandas as pd
    from server_process import ServerProcess

    frame = pd.DataFrame(columns)
    csv_path = workdir / "frame.csv"
    frame.to_csv(csv_path, index=False, na_rep="")
    server = ServerProcess.start(workdir / "server")
    try:
        os.environ.update(server.client_env())
        import sagemaker
        from sagemaker.model_monitor import DatasetFormat, DefaultModelMonitor

        session = sagemaker.Session()
        bucket = session.default_bucket()
        session.upload_data(str(csv_path), bucket=bucket, key_prefix="bench/frame")
        monitor = DefaultModelMonitor(role=sagemaker.get_execution_role(session),
                                      instance_count=1, instance_type="ml.m5.xlarge",
                                      sagemaker_session=session)
        start = time.perf_counter()
        monitor.suggest_baseline(baseline_dataset=f"s3://{bucket}/bench/frame/frame.csv",
                                 dataset_format=DatasetFormat.csv(header=True),
                                 output_s3_uri=f"s3://{bucket}/bench/baseline", wait=True,
                                 logs=False)
        elapsed = time.perf_counter() - start
        status = session.sagemaker_client.describe_processing_job(
            ProcessingJobName=monitor.latest_baselining_job_name)["ProcessingJobStatus"]
        if status != "Completed":
            raise SystemExit(f"the baseline job ended {status}")
        return elapsed
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--job", action="store_true", help="also run it as a processing job")
    parser.add_argument("--skip-others", action="store_true", help="modelyard only")
    args = parser.parse_args()

    columns = make_columns(args.rows)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        workdir = Path(tmp)
        data_file = workdir / "frame.npz"
        np.savez(data_file, **columns)
        seconds.update(modelyard_in_process(columns, args.repeats))
        if args.job:
            seconds["modelyard_job"] = modelyard_job(columns, workdir)
        if not args.skip_others:
            python = ensure_side_venv()
            script = workdir / "side.py"
            script.write_text(_SIDE_SCRIPT)
            output = subprocess.run([str(python), str(script), str(data_file),
                                     str(args.repeats)], check=True, capture_output=True,
                                    text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            seconds.update(json.loads(output.stdout.strip().splitlines()[-1]))

    print(f"{args.rows:,} rows x {len(columns)} columns (12 numeric, 8 categorical); "
          f"best of {args.repeats}")
    labels = {
        "modelyard": "modelyard analyzer, profile (in process)",
        "modelyard_compare": "modelyard analyzer, profile + all checks vs baseline",
        "modelyard_job": "modelyard analyzer as a processing job (CSV read incl.)",
        "whylogs": "whylogs 1.6.4 why.log(frame)",
        "evidently": "Evidently 0.7.23 DataDriftPreset report (ref + cur)",
    }
    for key, label in labels.items():
        if key in seconds:
            print(f"  {label:<58} {seconds[key]:8.2f} s  {args.rows / seconds[key]:>12,.0f} rows/s")
    if "evidently" in seconds:
        print(f"  modelyard profile vs Evidently: "
              f"{seconds['evidently'] / seconds['modelyard']:.1f}x; comparison run vs Evidently: "
              f"{seconds['evidently'] / seconds['modelyard_compare']:.1f}x")
    if "whylogs" in seconds:
        print(f"  modelyard profile vs whylogs: {seconds['whylogs'] / seconds['modelyard']:.1f}x")


if __name__ == "__main__":
    main()
