"""A batch transform job: the model's server in the job's sandbox, the input fed through it.

The job starts ``modelyard.runtimes.model_server`` for the model's container in its own
sandbox (``/opt/ml/model`` extracted from ``ModelDataUrl``) with SageMaker's transform
environment (``SAGEMAKER_BATCH=true``, ``SAGEMAKER_MAX_PAYLOAD_IN_MB``,
``SAGEMAKER_BATCH_STRATEGY``, ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``), then reads each
input file in order, splits it into records (``transform_data``), posts mini-batches to
``/invocations`` with up to ``MaxConcurrentTransforms`` requests in flight (MultiRecord
over plain lines: straight slices of the file, ``transform_data.line_batches``), and writes
``<relative input path>.out`` under ``S3OutputPath``. A built-in algorithm's server starts
warm, forked by its framework's zygote (``warm_start``). Settings the job leaves out are asked
of the server's ``GET /execution-parameters``, as SageMaker does. Output of the server goes
to ``/aws/sagemaker/TransformJobs``, stream ``<job>/<instance-id>``.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..store.logs import LogStore
from . import framework_envs
from .cgroups import job_memory_cgroup
from .channels import JobDataError, S3Location, download_input, extract_tarball
from .executor import JobHandle
from .images import parse_image
from .job_process import LogSink, job_environment
from .job_records import update_job
from .sandbox import Sandbox, SandboxUnavailable
from .transform_capture import add_inference_ids, output_format, write_manifests
from .transform_data import (
    DataProcessing, FilterError, LineBatches, line_batches, mini_batches, split_output, split_records,
)
from .transform_server import ModelServerProcess, TransformFailed
from .warm_start import warm_up

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.transform")

KIND = "TransformJob"
LOG_GROUP = "/aws/sagemaker/TransformJobs"
CONTAINERS_KEY = "_modelyardContainers"  # the model's containers, resolved at create time
DEFAULT_INVOCATION_TIMEOUT = 600.0
MB = 1024 * 1024


def run_transform_job(platform: "Platform", name: str, handle: JobHandle) -> None:
    resource = platform.resources.get(KIND, name)
    if resource is None or resource.document["TransformJobStatus"] not in ("InProgress", "Stopping"):
        return
    if handle.stop_requested.is_set() or resource.document["TransformJobStatus"] == "Stopping":
        _finish(platform, name, "Stopped")
        return
    job = resource.document
    instance_id = "i-" + secrets.token_hex(9)[:17]
    sink = LogSink(LogStore.for_database(platform.db), LOG_GROUP, f"{name}/{instance_id}")
    sandbox = Sandbox(platform.settings.data_dir / "jobs" / "transform" / name)
    now = platform.clock.now()
    update_job(platform, KIND, name, lambda doc: doc.update(TransformStartTime=now),
               status_field="TransformJobStatus")
    try:
        status = _run(platform, name, job, handle, sandbox, sink)
        _finish(platform, name, status)
    except TransformFailed as error:
        sink.write(f"modelyard: the transform job failed: {error}")
        _finish(platform, name, "Failed", FailureReason=_shorten(str(error)))
    except JobDataError as error:
        _finish(platform, name, "Failed", FailureReason=_shorten(f"ClientError: {error}"))
    except SandboxUnavailable as error:
        _finish(platform, name, "Failed", FailureReason=f"InternalServerError: {error}")
    except Exception as error:  # noqa: BLE001 - a bug here must not leave the job InProgress
        log.exception("transform job %s failed unexpectedly", name)
        _finish(platform, name, "Failed", FailureReason=_shorten(
            f"InternalServerError: {type(error).__name__}: {error}"))
    finally:
        try:
            sink.flush()
        finally:
            sandbox.remove()


def _run(platform: "Platform", name: str, job: dict, handle: JobHandle, sandbox: Sandbox,
         sink: LogSink) -> str:
    containers = job.get(CONTAINERS_KEY) or []
    if len(containers) != 1:
        raise TransformFailed(f"ClientError: model {job['ModelName']} has {len(containers)} "
                              "containers; modelyard transforms with single-container models.")
    container = containers[0]
    image = parse_image(container["Image"])
    if image is not None and not container.get("Environment", {}).get("SAGEMAKER_PROGRAM"):
        warm_up(image.framework)  # a warm start's zygote: its imports overlap the downloads
    sandbox.create(["model", "code"])
    inputs = sandbox.root / "input"
    source = job["TransformInput"]["DataSource"]["S3DataSource"]
    sink.write(f"modelyard: reading the input {source['S3Uri']} ({source['S3DataType']})")
    download_input(platform.objects, source["S3Uri"], source["S3DataType"], inputs)
    files = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*") if p.is_file())
    argv, env = _prepare_server(platform, job, container, sandbox, sink)
    framework = image.framework if image is not None else ""
    instance_type = job["TransformResources"]["InstanceType"]
    with job_memory_cgroup(platform.settings, instance_type, name, sink.write) as memory:
        server = ModelServerProcess(sandbox, platform.settings.data_dir, argv, env, sink,
                                    memory.procs_file if memory else None, framework)
        try:
            # The first file is read (and cut into mini-batches) while the model server loads.
            first = _read_input(job, inputs / files[0], files[0]) if files else None
            early = _early_line_batches(job, first)
            server.wait_ready(handle)
            if handle.stop_requested.is_set():
                return "Stopped"
            feeder = Feeder(platform, job, server, sink, handle, sandbox.root / "output")
            capture = job.get("DataCaptureConfig")
            started = _start_time(platform, name) if capture else 0.0
            if capture and capture.get("GenerateInferenceId"):
                feeder.inference_ids = (output_format(job), started)
            try:
                for index, relative in enumerate(files):
                    if handle.stop_requested.is_set():
                        return "Stopped"
                    feeder.transform_file(inputs / relative, relative,
                                          first if index == 0 else None,
                                          early if index == 0 else None)
            finally:
                feeder.pool.shutdown(wait=True, cancel_futures=True)
            if handle.stop_requested.is_set():
                return "Stopped"
            if capture:
                for uri in write_manifests(platform, job, files, started):
                    sink.write(f"modelyard: captured {uri}")
            return "Completed"
        finally:
            server.stop()


def _prepare_server(platform: "Platform", job: dict, container: dict, sandbox: Sandbox,
                    sink: LogSink) -> tuple[list[str], dict[str, str]]:
    from ..runtimes.model_server import serve_command

    image = parse_image(container["Image"])
    if image is None:
        raise TransformFailed(f"ClientError: modelyard cannot serve the image {container['Image']} "
                              "of model " + job["ModelName"] + ".")
    environment = {str(k): str(v) for k, v in container.get("Environment", {}).items()}
    for uri, where, filename in ((container.get("ModelDataUrl"), "model", "model.tar.gz"),
                                 (environment.get("SAGEMAKER_SUBMIT_DIRECTORY"), "code",
                                  "sourcedir.tar.gz")):
        if uri and uri.startswith("s3://"):
            sink.write(f"modelyard: downloading {uri}")
            location = S3Location.parse(uri)
            tarball = sandbox.root / filename
            try:
                platform.objects.fetch_to_path(location.bucket, location.key, tarball, link=False)
                extract_tarball(tarball, sandbox.host_path(where))
            except Exception as error:  # noqa: BLE001 - a missing or broken archive is the user's
                message = getattr(error, "message", None) or str(error)
                raise TransformFailed(f"ClientError: cannot load the model data {uri}: {message}") from None
            finally:
                tarball.unlink(missing_ok=True)
    strategy = job.get("BatchStrategy")
    env = job_environment(platform.settings, job["TransformResources"]["InstanceType"], {
        **environment, **job.get("Environment", {}),
        "SAGEMAKER_BIND_TO_PORT": "0",
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(job.get("MaxPayloadInMB", 6)),
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(job.get("MaxConcurrentTransforms", 1)),
        "MODELYARD_MAX_PAYLOAD_BYTES": str(max(1, job.get("MaxPayloadInMB", 6) or 100) * MB + MB),
        "MODELYARD_TRANSFORM_JOB_NAME": job["TransformJobName"],
        **({"SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD" if strategy == "MultiRecord"
            else "SINGLE_RECORD"} if strategy else {}),
    })
    argv = serve_command(image.framework)
    script = image.framework == "sklearn" or (image.framework == "xgboost"
                                              and environment.get("SAGEMAKER_PROGRAM"))
    spec = framework_envs.spec_for(image) if script else None
    if spec is None or not framework_envs.enabled():
        return argv, env
    try:
        environment_dir = framework_envs.ensure_environment(spec, framework_envs.cache_root(),
                                                            sink.write)
    except OSError as error:
        sink.write(f"modelyard: WARNING: cannot build the {spec.title} environment ({error}); "
                   "serving on modelyard's own library versions instead")
        return argv, env
    runner_dir = sandbox.tmp / framework_envs.RUNNER_DIR
    runner_dir.mkdir(parents=True, exist_ok=True)
    import modelyard

    (runner_dir / "modelyard").symlink_to(Path(modelyard.__file__).resolve().parent,
                                          target_is_directory=True)
    sink.write(f"modelyard: serving on the {spec.title} environment {environment_dir}")
    return [str(environment_dir / "bin" / "python"), *argv[1:]], {
        **env,
        "PATH": os.pathsep.join(filter(None, [str(environment_dir / "bin"), env.get("PATH")])),
        "PYTHONPATH": os.pathsep.join(filter(None, [f"/tmp/{framework_envs.RUNNER_DIR}",
                                                    env.get("PYTHONPATH")])),
        "VIRTUAL_ENV": str(environment_dir),
    }


class Feeder:
    """Sends one job's records to its model server and assembles the outputs."""

    def __init__(self, platform: "Platform", job: dict, server: ModelServerProcess,
                 sink: LogSink, handle: JobHandle, out_dir: Path) -> None:
        self.platform = platform
        self.job = job
        self.out_dir = out_dir
        self.server = server
        self.sink = sink
        self.handle = handle
        self.processing = DataProcessing.from_job(job)
        self.inference_ids: tuple[str, float] | None = None  # (format, start) to tag outputs
        transform_input = job["TransformInput"]
        transform_output = job["TransformOutput"]
        self.split_type = transform_input.get("SplitType", "None")
        self.output = S3Location.parse(transform_output["S3OutputPath"])
        self.assemble_line = transform_output.get("AssembleWith", "None") == "Line"
        self.headers = {"Content-Type": transform_input.get("ContentType") or "application/octet-stream"}
        if transform_output.get("Accept"):
            self.headers["Accept"] = transform_output["Accept"]
        client = job.get("ModelClientConfig", {})
        self.timeout = float(client.get("InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT))
        self.retries = int(client.get("InvocationsMaxRetries", 3))
        split = urlsplit(server.url or "")
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self._local = threading.local()
        parameters = self._execution_parameters(job)
        self.multi = (job.get("BatchStrategy") or parameters.get("BatchStrategy", "MultiRecord")
                      ).replace("_", "").lower() == "multirecord"
        self.max_bytes = int(job.get("MaxPayloadInMB", parameters.get("MaxPayloadInMB", 6))) * MB
        self.concurrency = max(1, int(job.get("MaxConcurrentTransforms")
                                      or parameters.get("MaxConcurrentTransforms", 1)))
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="transform")
        sink.write(f"modelyard: BatchStrategy {'MultiRecord' if self.multi else 'SingleRecord'}, "
                   f"MaxPayloadInMB {self.max_bytes // MB}, MaxConcurrentTransforms {self.concurrency}")

    def _execution_parameters(self, job: dict) -> dict[str, Any]:
        if all(job.get(key) for key in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms")):
            return {}
        try:
            status, body = self._request("GET", "/execution-parameters", None, {})
            if status == 200:
                import json

                return json.loads(body)
        except (OSError, ValueError, http.client.HTTPException):
            pass
        return {}

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _request(self, method: str, path: str, body: bytes | None,
                 headers: dict[str, str]) -> tuple[int, bytes]:
        attempts = 0
        while True:
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                attempts += 1
                if attempts > self.retries or self.server.process.poll() is not None:
                    raise

    def _invoke(self, payload: bytes, label: str) -> bytes:
        if self.handle.stop_requested.is_set():
            return b""
        try:
            status, body = self._request("POST", "/invocations", payload, self.headers)
        except (OSError, http.client.HTTPException) as error:
            raise TransformFailed(self.server.failure(
                f"did not answer for {label} ({type(error).__name__}: {error})")) from None
        if status >= 400:
            text = body.decode("utf-8", errors="replace").strip().splitlines()
            raise TransformFailed(
                f"ClientError: The model server answered {status} for {label}: "
                f"{' '.join(text)[:600] or '(empty body)'}. See the job's log in {LOG_GROUP}.")
        return body

    def transform_file(self, path: Path, relative: str,
                       data: "bytes | TransformFailed | None" = None,
                       early: tuple[int, LineBatches] | None = None) -> None:
        """Feed one file (its content already read by ``_read_input``, or not yet; its
        batches maybe already cut by ``_early_line_batches``)."""
        if data is None:
            data = _read_input(self.job, path, relative)
        if isinstance(data, TransformFailed):
            raise data
        try:
            spans = self._line_batches(data, early)
        except FilterError as error:
            raise TransformFailed(f"ClientError: {relative}: InputFilter: {error}") from None
        records: list[bytes] = []
        if spans is not None:  # MultiRecord over plain lines: batches are slices of the file
            count, batches = spans.records, [(first, end) for first, end, _, _ in spans.batches]
            slices = {(first, end): (low, high) for first, end, low, high in spans.batches}
        else:
            records = split_records(data, self.split_type)
            count, slices = len(records), {}
        self.sink.write(f"modelyard: {relative}: {count} records")
        self.sink.flush()
        try:
            payload_records = records if self.processing.input_filter is None else \
                [self.processing.filter_input(r) for r in records]
            if spans is None:
                batches = mini_batches(payload_records, self.max_bytes, self.multi)
        except (FilterError, ValueError) as error:
            raise TransformFailed(f"ClientError: {relative}: InputFilter: {error}") from None
        separator = b"\n" if self.split_type == "Line" else b""

        def send(batch: tuple[int, int]) -> bytes:
            start, end = batch
            if slices:
                low, high = slices[batch]
                payload = data[low:high]
            else:
                payload = separator.join(payload_records[start:end])
                if self.split_type == "Line" and end - start > 1:
                    payload += b"\n"
            label = (f"{relative} record {start + 1}" if end - start == 1
                     else f"{relative} records {start + 1}-{end}")
            return self._invoke(payload, label)

        out_path = self.out_dir / (relative + ".out")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "wb") as out:
            flushed = time.monotonic()
            for batch, body in zip(batches, self.pool.map(send, batches)):
                if self.handle.stop_requested.is_set():
                    return
                if time.monotonic() - flushed > 1.0:
                    self.sink.flush()
                    flushed = time.monotonic()
                out.write(self._assemble(records, batch, body, relative))
        if self.inference_ids is not None:
            add_inference_ids(out_path, *self.inference_ids)
        target = self.output.child(relative + ".out")
        self.platform.objects.put_file(target.bucket, target.key, out_path,
                                       now=self.platform.clock.now())
        self.sink.write(f"modelyard: wrote {target.uri}")
        self.sink.flush()

    def _line_batches(self, data: bytes, early: tuple[int, LineBatches] | None) -> LineBatches | None:
        """The file's mini-batches as byte slices when nothing needs its records one by one
        (SplitType Line, MultiRecord, no InputFilter, JoinSource or OutputFilter)."""
        if (self.split_type != "Line" or not self.multi or self.processing.input_filter is not None
                or self.processing.per_record_output):
            return None
        if early is not None and early[0] == self.max_bytes:
            return early[1]
        return line_batches(data, self.max_bytes)

    def _assemble(self, records: list[bytes], batch: tuple[int, int], body: bytes,
                  relative: str) -> bytes:
        start, end = batch
        if not self.processing.per_record_output:
            if self.assemble_line and not body.endswith(b"\n"):
                body += b"\n"
            return body
        try:
            outputs = split_output(body, end - start)
            lines = [self.processing.finish(records[start + i], output)
                     for i, output in enumerate(outputs)]
        except (FilterError, ValueError) as error:
            raise TransformFailed(f"ClientError: {relative} records {start + 1}-{end}: "
                                  f"JoinSource/OutputFilter: {error}") from None
        joiner = b"\n" if self.assemble_line or len(lines) > 1 else b""
        text = joiner.join(lines)
        return text + b"\n" if self.assemble_line or self.split_type == "Line" else text


def _read_input(job: dict, path: Path, relative: str) -> "bytes | TransformFailed":
    """A file's content (``CompressionType`` applied), or the error that fails the job when
    the file's turn comes."""
    transform_input = job["TransformInput"]
    data = path.read_bytes()
    if transform_input.get("CompressionType", "None") == "Gzip":
        try:
            data = gzip.decompress(data)
        except OSError as error:
            return TransformFailed(f"ClientError: {relative} is not gzip data "
                                   f"(CompressionType Gzip): {error}")
    return data


def _early_line_batches(job: dict, data: "bytes | TransformFailed | None") -> tuple[int, LineBatches] | None:
    """(MaxPayloadInMB in bytes, the file's batches) when the job fixes both MultiRecord and
    MaxPayloadInMB over SplitType Line, so the batches can be cut before the server is up."""
    if not isinstance(data, bytes) or job.get("BatchStrategy") != "MultiRecord" \
            or not job.get("MaxPayloadInMB") or job["TransformInput"].get("SplitType") != "Line":
        return None
    max_bytes = int(job["MaxPayloadInMB"]) * MB
    try:
        batches = line_batches(data, max_bytes)
    except FilterError:
        return None  # the feeder reports it when the file's turn comes
    return (max_bytes, batches) if batches is not None else None


def _finish(platform: "Platform", name: str, status: str, **fields: Any) -> None:
    now = platform.clock.now()

    def change(document: dict) -> None:
        document["TransformJobStatus"] = status
        document.setdefault("TransformStartTime", now)
        document["TransformEndTime"] = now
        document.update(fields)

    update_job(platform, KIND, name, change, status_field="TransformJobStatus")
    log.info("transform job %s %s", name, status)


def _start_time(platform: "Platform", name: str) -> float:
    resource = platform.resources.get(KIND, name)
    started = resource.document.get("TransformStartTime") if resource else None
    return float(started) if started is not None else platform.clock.now()


def _shorten(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def recover_transform_job(platform: "Platform", name: str, status: str) -> bool:
    if status == "Stopping":
        _finish(platform, name, "Stopped")
        return False
    return True
