"""``modelyard demo``: the platform end to end, through the SageMaker Python SDK.

It uses a server already running on the data directory, or starts one for the demo's
duration. Each step prints as it runs, and a table sums up at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .config import DEFAULT_PORT, load_settings
from .demo_monitoring import monitor_ticket_classifier
from .demo_serving import serve_ticket_classifier
from .demo_tuning import tune_ticket_classifier
from .server import export_lines, running_endpoint


# The SageMaker SDK's loggers: its notices are about the SDK, not about modelyard.
SDK_LOGGERS = ("sagemaker", "sagemaker_core")


class Steps:
    """Runs named steps, printing each as it starts and ends, and keeps a summary."""

    def __init__(self, before_each: Callable[[], None] = lambda: None) -> None:
        self.rows: list[tuple[str, str, float]] = []
        self._before_each = before_each

    def run(self, title: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        self._before_each()
        print(f"  … {title}", flush=True)
        started = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - started
        outcome = describe(result)
        print(f"  ✓ {title}: {outcome} ({elapsed:.2f}s)", flush=True)
        self.rows.append((title, outcome, elapsed))
        return result

    def table(self) -> str:
        width = max(len(title) for title, _, _ in self.rows)
        result_width = max(len(outcome) for _, outcome, _ in self.rows)
        lines = [f"{'step'.ljust(width)}  {'result'.ljust(result_width)}  seconds"]
        lines.append(f"{'-' * width}  {'-' * result_width}  -------")
        for title, outcome, elapsed in self.rows:
            lines.append(f"{title.ljust(width)}  {outcome.ljust(result_width)}  {elapsed:7.2f}")
        return "\n".join(lines)


def run_demo(*, data_dir: str | None = None, port: int | None = None) -> int:
    with _quiet_sdk() as quiet:
        try:
            import sagemaker  # noqa: F401
        except ImportError:
            print("modelyard demo drives the SageMaker Python SDK; install it with "
                  "pip install 'modelyard[sdk]' (or '.[test]' from a checkout).", file=sys.stderr)
            return 1
        return _run(data_dir, port, quiet)


@contextmanager
def _quiet_sdk() -> Iterator[Callable[[], None]]:
    """Keep the SDK's own warnings and notices out of the demo's output, in this process only.

    The SageMaker SDK warns on import that v2 is on a path of deprecation, warns each time a
    step is built under a PipelineSession, logs a notice for each field it leaves out of a
    pipeline definition ("Popping out ..."), and turns on INFO logging for itself. None of
    that is about modelyard and none of it is an error: while the demo runs, warnings raised
    in the SDK's modules are ignored and the SDK's loggers pass errors only. Yields a
    function that quiets loggers the SDK created since (some set their own level on import);
    levels are restored on the way out.
    """
    saved: dict[str, int] = {}

    def quiet() -> None:
        names = [name for name in logging.root.manager.loggerDict
                 if name.split(".")[0] in SDK_LOGGERS]
        for name in {*SDK_LOGGERS, "sagemaker.config", *names}:
            logger = logging.getLogger(name)
            saved.setdefault(name, logger.level)
            logger.setLevel(max(logger.level, logging.ERROR))
        # botocore logs credential notices at INFO; its warnings still show.
        logging.getLogger("botocore").setLevel(logging.WARNING)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"sagemaker(_core)?(\.|$)")
        warnings.filterwarnings("ignore", message=r".*SageMaker Python SDK v2")
        saved["botocore"] = logging.getLogger("botocore").level
        quiet()
        try:
            yield quiet
        finally:
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)


def _run(data_dir: str | None, port: int | None, quiet: Callable[[], None]) -> int:
    quiet()  # loggers the SDK's import just configured
    settings = load_settings(data_dir=data_dir)
    shared_server = running_endpoint(settings.data_dir) is not None
    with _server(settings.data_dir, port) as endpoint:
        os.environ.update(_client_env(settings, endpoint))
        print(f"modelyard demo against {endpoint} (data in {settings.data_dir})")
        steps = Steps(before_each=quiet)
        bucket = _storage_round_trip(steps)
        splits = _prepare_tickets(steps, settings.data_dir, bucket)
        _train_ticket_classifier(steps, bucket, splits)
        tuned = tune_ticket_classifier(steps, bucket, splits)
        _train_xgboost_on_breast_cancer(steps, bucket)
        approved = _run_ticket_pipeline(steps, bucket, tuned)
        serve_ticket_classifier(steps, bucket, approved, splits["test"])
        monitor_ticket_classifier(steps, bucket)
        print()
        print(steps.table())
        print(_console_hint(settings, endpoint, shared_server))
    return 0


def _storage_round_trip(steps: Steps) -> str:
    import sagemaker

    session = sagemaker.Session()
    role = steps.run("resolve execution role", sagemaker.get_execution_role, str)
    del role
    bucket = steps.run("create default bucket", session.default_bucket, str)
    workdir = Path(tempfile.mkdtemp(prefix="modelyard-demo-"))
    source = workdir / "tickets.jsonl"
    steps.run("write sample tickets", lambda: _write_sample_tickets(source),
              lambda count: f"{count} tickets, {source.stat().st_size:,} bytes")
    uri = steps.run(
        "upload with Session.upload_data",
        lambda: session.upload_data(str(source), bucket=bucket, key_prefix="demo/tickets"),
        str,
    )
    target = workdir / "downloaded"
    steps.run(
        "download with Session.download_data",
        lambda: session.download_data(str(target), bucket=bucket, key_prefix="demo/tickets"),
        lambda files: f"{len(files)} file(s)",
    )
    same = _sha256(source) == _sha256(target / "tickets.jsonl")
    steps.run("compare bytes", lambda: same, lambda ok: "identical" if ok else "DIFFERENT")
    if not same:
        raise SystemExit(f"downloaded copy of {uri} differs from the upload")
    return bucket


def _prepare_tickets(steps: Steps, data_dir: Path, bucket: str) -> dict[str, str]:
    """Real tickets in, a processing job splits them into fastText files."""
    import sagemaker
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.sklearn.processing import SKLearnProcessor

    from .demo_data import ticket_data
    from .examples.ticket_classifier import PREPROCESSING

    tickets = steps.run("fetch 20 Newsgroups tickets", lambda: ticket_data(data_dir),
                        lambda path: f"{sum(1 for _ in path.open()):,} tickets")
    session = sagemaker.Session()
    steps.run("upload tickets", lambda: session.upload_data(
        str(tickets), bucket=bucket, key_prefix="demo/tickets/raw"), str)
    processor = SKLearnProcessor(
        framework_version="1.2-1", role=sagemaker.get_execution_role(), instance_count=1,
        instance_type="ml.m5.xlarge", base_job_name="demo-preprocess")
    outputs = {name: f"s3://{bucket}/demo/tickets/{name}" for name in ("train", "validation", "test")}

    def run() -> str:
        processor.run(
            code=str(PREPROCESSING),
            inputs=[ProcessingInput(source=f"s3://{bucket}/demo/tickets/raw",
                                    destination="/opt/ml/processing/input/tickets")],
            outputs=[ProcessingOutput(output_name=name, source=f"/opt/ml/processing/{name}",
                                      destination=uri) for name, uri in outputs.items()],
            arguments=["--min-tokens", "10"], wait=False, logs=False)
        return _follow(processor.latest_job.job_name, "processing")

    steps.run("processing job: clean, balance, split 70/15/15", run, str)
    return outputs


def _train_ticket_classifier(steps: Steps, bucket: str, splits: dict[str, str]) -> None:
    import sagemaker
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator

    session = sagemaker.Session()
    for learning_rate in (0.05, 0.5):
        estimator = Estimator(
            image_uri=image_uris.retrieve("blazingtext", session.boto_region_name, "latest"),
            role=sagemaker.get_execution_role(), instance_count=1, instance_type="ml.c5.xlarge",
            output_path=f"s3://{bucket}/demo/models", base_job_name="demo-blazingtext",
            # buckets: 200k hashed n-gram rows keep model.bin near 80 MB (2M would be 800 MB)
            hyperparameters={"mode": "supervised", "epochs": 10, "learning_rate": learning_rate,
                             "word_ngrams": 2, "vector_dim": 100, "buckets": 200000},
            metric_definitions=[{"Name": "validation:accuracy",
                                 "Regex": "#validation_accuracy: ([0-9.]+)"}],
        )

        def fit() -> str:
            estimator.fit({"train": splits["train"], "validation": splits["validation"]},
                          wait=False, logs=False)
            return _follow(estimator.latest_training_job.job_name, "training",
                           metric="validation:accuracy")

        steps.run(f"BlazingText, learning rate {learning_rate}", fit, str)


def _train_xgboost_on_breast_cancer(steps: Steps, bucket: str) -> None:
    import numpy
    import sagemaker
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    session = sagemaker.Session()
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(features, labels, test_size=0.25,
                                                      random_state=0)
    channels = {}
    for name, x, y in (("train", x_train, y_train), ("validation", x_val, y_val)):
        rows = numpy.column_stack([y, x])
        text = "\n".join(",".join(f"{value:g}" for value in row) for row in rows) + "\n"
        uri = session.upload_string_as_file_body(text, bucket, f"demo/cancer/{name}/data.csv")
        channels[name] = TrainingInput(uri.rsplit("/", 1)[0], content_type="text/csv")
    estimator = Estimator(
        image_uri=image_uris.retrieve("xgboost", session.boto_region_name, "1.7-1"),
        role=sagemaker.get_execution_role(), instance_count=1, instance_type="ml.m5.xlarge",
        output_path=f"s3://{bucket}/demo/models", base_job_name="demo-xgboost",
        hyperparameters={"objective": "binary:logistic", "num_round": 50, "max_depth": 3,
                         "eta": 0.3, "eval_metric": "auc"},
    )

    def fit() -> str:
        estimator.fit(channels, wait=False, logs=False)
        return _follow(estimator.latest_training_job.job_name, "training", metric="validation:auc")

    steps.run("XGBoost on breast cancer", fit, str)


def _run_ticket_pipeline(steps: Steps, bucket: str, tuned: dict | None = None) -> str | None:
    """The §2 pipeline twice: the default learning rate fails the accuracy gate; the tuned
    learning rate and epochs (else 0.5 and the default epochs) pass.

    Returns the ARN of the version it approved (None if none was registered).
    """
    import boto3
    import sagemaker

    from .examples.ticket_classifier.pipeline import build_pipeline

    group = "demo-ticket-classifier"
    pipeline = build_pipeline("demo-ticket-pipeline", sagemaker.get_execution_role(), bucket,
                              "demo/tickets", group=group)
    steps.run("upsert ticket pipeline", lambda: pipeline.upsert(
        role_arn=sagemaker.get_execution_role())["PipelineArn"], str)
    client = boto3.client("sagemaker")
    runs = [{"LearningRate": 0.05}, {"LearningRate": 0.5}]
    if tuned:
        runs[1] = {"LearningRate": tuned["learning_rate"], "Epochs": tuned["epochs"]}
    for values in runs:
        def run() -> str:
            execution = pipeline.start(parameters={
                "InputDataUrl": f"s3://{bucket}/demo/tickets/raw", **values,
                "AccuracyThreshold": 0.8})
            description = _follow_pipeline(client, execution.arn)
            if description["PipelineExecutionStatus"] == "Succeeded":
                return "Succeeded: model registered"
            return (f"{description['PipelineExecutionStatus']}: "
                    f"{_failure_message(client, execution.arn, description)}")

        title = f"pipeline, {'tuned ' if 'Epochs' in values else ''}learning rate {values['LearningRate']:g}"
        steps.run(title + (f", {values['Epochs']} epochs" if "Epochs" in values else ""), run, str)

    approved: list[str] = []

    def approve() -> str:
        packages = client.list_model_packages(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending",
            MaxResults=1)["ModelPackageSummaryList"]
        if not packages:
            return "no version registered"
        arn = packages[0]["ModelPackageArn"]
        client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                    ApprovalDescription="accuracy gate passed in the demo")
        approved.append(arn)
        return f"{arn.rsplit('/', 2)[-2]} v{arn.rsplit('/', 1)[-1]} Approved"

    steps.run("approve the newest version", approve, str)
    return approved[0] if approved else None


def _failure_message(client, execution_arn: str, description: dict) -> str:  # noqa: ANN001
    """Why an execution failed, in its own words: a Fail step's ErrorMessage (kept in the
    step's metadata; the execution's FailureReason only says that a step failed), else the
    failed step's FailureReason."""
    listed = client.list_pipeline_execution_steps(
        PipelineExecutionArn=execution_arn)["PipelineExecutionSteps"]
    for step in listed:
        message = step.get("Metadata", {}).get("Fail", {}).get("ErrorMessage")
        if message:
            return message
    for step in listed:
        if step["StepStatus"] == "Failed" and step.get("FailureReason"):
            return f"{step['StepName']}: {step['FailureReason']}"
    return description.get("FailureReason", "no reason given")


def _follow_pipeline(client, execution_arn: str) -> dict:  # noqa: ANN001 - a boto3 client
    """Print each step's status as it changes, until the execution ends."""
    shown: dict[str, str] = {}
    while True:
        listed = client.list_pipeline_execution_steps(
            PipelineExecutionArn=execution_arn, SortOrder="Ascending")["PipelineExecutionSteps"]
        for step in listed:
            status = step["StepStatus"] + (" (cached)" if "CacheHitResult" in step else "")
            if shown.get(step["StepName"]) != status:
                shown[step["StepName"]] = status
                print(f"      {step['StepName']}: {status}", flush=True)
        description = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        if description["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped"):
            return description
        time.sleep(0.5)


def _follow(job_name: str, kind: str, metric: str | None = None) -> str:
    """Print a job's status changes as they happen; return its outcome in a few words."""
    import boto3

    client = boto3.client("sagemaker")
    describe, status_field = {
        "training": (lambda: client.describe_training_job(TrainingJobName=job_name),
                     "TrainingJobStatus"),
        "processing": (lambda: client.describe_processing_job(ProcessingJobName=job_name),
                       "ProcessingJobStatus"),
        "transform": (lambda: client.describe_transform_job(TransformJobName=job_name),
                      "TransformJobStatus"),
    }[kind]
    last = None
    while True:
        description = describe()
        status = description[status_field]
        shown = description.get("SecondaryStatus", status)
        if shown != last:
            print(f"      {job_name}: {shown}", flush=True)
            last = shown
        if status in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.5)
    if status != "Completed":
        raise SystemExit(f"{job_name} ended {status}: {description.get('FailureReason')}")
    if metric:
        values = {item["MetricName"]: item["Value"]
                  for item in description.get("FinalMetricDataList", [])}
        return f"{metric} {values.get(metric, float('nan')):.3f}"
    return "completed"


CATEGORIES = ["comp.graphics", "comp.sys.mac.hardware", "sci.crypt", "sci.space", "misc.forsale"]


def _write_sample_tickets(path: Path) -> int:
    rng = random.Random(7)
    words = "router dhcp screen driver install key cipher orbit launch sale price monitor".split()
    with path.open("w") as handle:
        for number in range(1000):
            category = rng.choice(CATEGORIES)
            content = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            handle.write(json.dumps({
                "ticket_id": f"T{number:05d}", "content": content, "category": category,
                "priority": rng.choice(["low", "medium", "high"]),
            }) + "\n")
    return 1000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _server(data_dir: Path, port: int | None) -> Iterator[str]:
    """Yield the endpoint of a server on ``data_dir``, starting one if none runs."""
    running = running_endpoint(data_dir)
    if running:
        yield running
        return
    port = port or (DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else _free_port())
    log_path = data_dir / "demo-server.log"
    print(f"starting modelyard server on port {port} (log: {log_path})", flush=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "server", "--port", str(port),
             "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(endpoint, process, log_path)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _console_hint(settings, endpoint: str, shared_server: bool) -> str:
    """Where to look at what the demo made: the web console of this data directory."""
    where = (f"Web console: {endpoint}/console/" if shared_server else
             f"Web console: run `modelyard server --data-dir {settings.data_dir}` and open "
             f"http://127.0.0.1:{DEFAULT_PORT}/console/ (this demo's server has stopped)")
    return (f"\n{where}\n  sign in with access key id {settings.credentials.access_key_id} "
            "and its secret access key (MODELYARD_SECRET_ACCESS_KEY, or "
            f"{settings.data_dir / 'identity.json'})")


def _client_env(settings, endpoint: str) -> dict[str, str]:
    env = {}
    for line in export_lines(settings):
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    env["AWS_ENDPOINT_URL"] = endpoint
    env.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    return env


def _wait_healthy(endpoint: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; see {log_path}")
        try:
            with urllib.request.urlopen(f"{endpoint}/_modelyard/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not become healthy within 60 s; see {log_path}")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
