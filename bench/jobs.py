"""Job benchmarks: ``python bench/jobs.py [overhead] [blazingtext] [--buckets N] [--runs N]``.

overhead     a processing job running a no-op script, CreateProcessingJob -> Completed,
             against the same script run with ``python`` directly (target: <= 0.5 s extra)
blazingtext  BlazingText supervised training as a modelyard job, create -> Completed,
             against ``fasttext.train_supervised`` + ``save_model`` on the same file and
             hyperparameters in this process (target: ratio <= 1.10); prints the job's
             phases (SecondaryStatusTransitions) too. ``--buckets 2000000`` runs only that
             bucket count (default: 2M and 200k); ``--runs`` pairs per count (default 3).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from server_process import ServerProcess  # noqa: E402

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
BLAZINGTEXT_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"


def wait_done(describe, field: str, poll: float = 0.01) -> dict:
    while True:
        description = describe()
        if description[field] in ("Completed", "Failed", "Stopped"):
            return description
        time.sleep(poll)


def bench_overhead(server: ServerProcess, scratch: Path) -> None:
    client = server.client("sagemaker")
    s3 = server.client("s3")
    s3.create_bucket(Bucket="bench-jobs")
    s3.put_object(Bucket="bench-jobs", Key="code/noop.py", Body=b"pass\n")
    script = scratch / "noop.py"
    script.write_text("pass\n")

    def direct() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, str(script)], check=True)
        return time.perf_counter() - started

    def through_modelyard(index: int) -> float:
        name = f"noop-{index}"
        started = time.perf_counter()
        client.create_processing_job(
            ProcessingJobName=name, RoleArn=ROLE,
            AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": [
                "python3", "/opt/ml/processing/input/code/noop.py"]},
            ProcessingInputs=[{"InputName": "code", "S3Input": {
                "S3Uri": "s3://bench-jobs/code/noop.py",
                "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix",
                "S3InputMode": "File"}}],
            ProcessingResources={"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}})
        job = wait_done(lambda: client.describe_processing_job(ProcessingJobName=name),
                        "ProcessingJobStatus")
        assert job["ProcessingJobStatus"] == "Completed", job
        return time.perf_counter() - started

    through_modelyard(-1)
    direct()
    jobs = [through_modelyard(index) for index in range(10)]
    plain = [direct() for _ in range(10)]
    extra = statistics.median(jobs) - statistics.median(plain)
    print(f"overhead     no-op processing job {statistics.median(jobs) * 1000:7.1f} ms   "
          f"python directly {statistics.median(plain) * 1000:6.1f} ms   "
          f"extra {extra * 1000:6.1f} ms (target <= 500 ms)")


TOPICS = [" ".join(f"t{topic}w{word}" for word in range(40)) for topic in range(10)]
COMMON = " ".join(f"c{word}" for word in range(400)).split()


def write_corpus(path: Path, lines: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for _ in range(lines):
            topic = rng.randrange(len(TOPICS))
            words = TOPICS[topic].split()
            text = [rng.choice(words) if rng.random() < 0.3 else rng.choice(COMMON)
                    for _ in range(120)]
            handle.write(f"__label__topic{topic} {' '.join(text)}\n")


BASE_HYPERPARAMETERS = {"mode": "supervised", "epochs": 10, "learning_rate": 0.5,
                        "word_ngrams": 2, "vector_dim": 100, "min_count": 1}


def bench_blazingtext(server: ServerProcess, scratch: Path,
                      bucket_counts: tuple[int, ...] = (2_000_000, 200_000), runs: int = 3) -> None:
    """Two bucket counts: 2M (BlazingText's default, an 800 MB model.bin that the job must
    pack into model.tar.gz) and 200k (an 80 MB model), to separate packing from overhead."""
    train, validation = scratch / "train.txt", scratch / "validation.txt"
    write_corpus(train, 20000, 1)
    write_corpus(validation, 2000, 2)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="bench-blazingtext")
    s3.upload_file(str(train), "bench-blazingtext", "train/train.txt")
    s3.upload_file(str(validation), "bench-blazingtext", "validation/validation.txt")
    for buckets in bucket_counts:
        _compare_blazingtext(server, scratch, train, validation, buckets, runs)


def _phases(job: dict) -> str:
    """Seconds per SecondaryStatus (Starting, Downloading, Training, Uploading, ...)."""
    shown = []
    for transition in job.get("SecondaryStatusTransitions", []):
        end = transition.get("EndTime")
        if end is not None and transition["Status"] not in ("Completed", "Failed", "Stopped"):
            seconds = (end - transition["StartTime"]).total_seconds()
            shown.append(f"{transition['Status']} {seconds:.2f}")
    return ", ".join(shown)


def _compare_blazingtext(server: ServerProcess, scratch: Path, train: Path, validation: Path,
                         buckets: int, runs: int) -> None:
    import fasttext

    from modelyard.engine.job_process import cpus_for

    client = server.client("sagemaker")
    threads = cpus_for("ml.c5.xlarge")
    hyperparameters = {**BASE_HYPERPARAMETERS, "buckets": buckets}

    def direct() -> float:
        started = time.perf_counter()
        model = fasttext.train_supervised(
            str(train), epoch=10, lr=0.5, wordNgrams=2, dim=100, bucket=buckets, minCount=1,
            thread=threads, verbose=0)
        model.test(str(train))
        model.test(str(validation))
        model.save_model(str(scratch / "direct.bin"))
        return time.perf_counter() - started

    def job(index: int) -> float:
        name = f"blazingtext-{buckets}-{index}"
        client.create_training_job(
            TrainingJobName=name, RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": BLAZINGTEXT_IMAGE, "TrainingInputMode": "File"},
            HyperParameters={key: str(value) for key, value in hyperparameters.items()},
            InputDataConfig=[
                {"ChannelName": channel, "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": f"s3://bench-blazingtext/{channel}/"}}}
                for channel in ("train", "validation")],
            OutputDataConfig={"S3OutputPath": "s3://bench-blazingtext/models"},
            ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 3600})
        # Poll gently and time the job by the server's own clock (creation to end): tight
        # polling would steal CPU from training on a 2-core machine.
        result = wait_done(lambda: client.describe_training_job(TrainingJobName=name),
                           "TrainingJobStatus", poll=0.5)
        assert result["TrainingJobStatus"] == "Completed", result.get("FailureReason")
        seconds = (result["TrainingEndTime"] - result["CreationTime"]).total_seconds()
        packing = [line.split("INFO", 1)[-1].strip() for line in
                   server.log_path.read_text(errors="replace").splitlines()
                   if f"/{name}/output/model.tar.gz:" in line]
        print(f"  job {name}: {seconds:.2f} s ({_phases(result)}) {' '.join(packing)}",
              flush=True)
        return seconds

    def pair(index: int) -> tuple[float, float]:
        plain = direct()
        print(f"  direct fastText: {plain:.2f} s", flush=True)
        return plain, job(index)

    pairs = [pair(index) for index in range(runs)]
    baseline = statistics.median(run[0] for run in pairs)
    modelyard = statistics.median(run[1] for run in pairs)
    print(f"blazingtext  buckets {buckets:>9,}: training job {modelyard:6.2f} s   "
          f"fasttext train+test+save {baseline:6.2f} s   ratio {modelyard / baseline:5.2f} "
          "(target <= 1.10)")


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", help="overhead, blazingtext (default: both)")
    parser.add_argument("--buckets", type=int, action="append",
                        help="BlazingText bucket count to run (repeatable; default 2M and 200k)")
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs per bucket count")
    args = parser.parse_args(argv)
    wanted = set(args.benchmarks) or {"overhead", "blazingtext"}
    if wanted - {"overhead", "blazingtext"}:
        parser.error(f"unknown benchmark(s) {sorted(wanted - {'overhead', 'blazingtext'})}")
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as scratch:
        server = ServerProcess.start(Path(scratch) / "data")
        try:
            if "overhead" in wanted:
                bench_overhead(server, Path(scratch))
            if "blazingtext" in wanted:
                bench_blazingtext(server, Path(scratch),
                                  tuple(args.buckets or (2_000_000, 200_000)), args.runs)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
