"""Model-server processes: one per instance of a production variant.

A ``ModelServer`` prepares its sandbox (``/opt/ml/model`` extracted from the container's
``ModelDataUrl``, ``/opt/ml/code`` from an ``s3://`` ``SAGEMAKER_SUBMIT_DIRECTORY``, read
straight from the object store), starts ``modelyard.runtimes.model_server`` in it on a
free loopback port (a built-in algorithm's warm, forked by its zygote:
``engine.warm_start``), streams its output to CloudWatch Logs (``/aws/sagemaker/Endpoints/
<endpoint>``, stream ``<variant>/<instance-id>``) and waits for the ready line and a
passing ``/ping``. Each server has its own supervisor thread that lives exactly as long as
the process: the sandbox ties the process to the thread that started it
(PR_SET_PDEATHSIG), so a killed modelyard server takes every model server with it.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine import framework_envs
from ..engine.cgroups import JobCgroup, job_memory_cgroup, out_of_memory_reason
from ..engine.channels import S3Location, extract_tarball
from ..engine.images import Image, parse_image
from ..engine.job_process import LogSink, job_environment
from ..engine.sandbox import Sandbox, SandboxUnavailable, terminate
from ..engine.warm_start import start_warm, warm_up
from ..runtimes.model_server import READY_LINE, serve_command
from ..store.logs import LogStore
from .live import Instance
from .metrics import record_model_setup_time

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.hosting")

LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
DEFAULT_STARTUP_TIMEOUT_SECONDS = 240  # SageMaker: /ping must pass within 4 minutes
STOP_GRACE_SECONDS = 30.0  # SageMaker: SIGTERM, then SIGKILL 30 s later
PING_TIMEOUT_SECONDS = 2.0
FLUSH_SECONDS = 0.5


class StartFailed(Exception):
    """An instance did not become healthy; the message is the endpoint's FailureReason."""


@dataclass(frozen=True)
class VariantSpec:
    """What one production variant runs, as the endpoint recorded it at Create/Update."""

    name: str
    model_name: str
    instance_type: str
    weight: float
    instance_count: int
    container: dict[str, Any]  # the model's resolved container (models.CONTAINERS_KEY)
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_SECONDS

    @classmethod
    def from_document(cls, item: dict[str, Any]) -> "VariantSpec":
        return cls(item["VariantName"], item["ModelName"], item["InstanceType"],
                   float(item["Weight"]), int(item["InstanceCount"]), item["Container"],
                   float(item.get("StartupTimeout") or DEFAULT_STARTUP_TIMEOUT_SECONDS))

    def same_servers(self, other: "VariantSpec") -> bool:
        """True when instances of ``other`` can serve this spec (only weight/count differ)."""
        return (self.name, self.model_name, self.instance_type, self.container) == (
            other.name, other.model_name, other.instance_type, other.container)


def log_group(endpoint: str) -> str:
    return LOG_GROUP_PREFIX + endpoint


def new_instance_id() -> str:
    return "i-" + secrets.token_hex(9)[:17]


def script_mode(image: Image, environment: dict[str, str]) -> bool:
    return image.framework == "sklearn" or (
        image.framework == "xgboost" and bool(environment.get("SAGEMAKER_PROGRAM")))


class ModelServer:
    """One instance: a sandboxed model server, its logs, and its supervisor thread."""

    def __init__(self, platform: "Platform", endpoint: str, endpoint_arn: str,
                 spec: VariantSpec) -> None:
        self.platform = platform
        self.endpoint = endpoint
        self.spec = spec
        self.instance_id = new_instance_id()
        self.stream = f"{spec.name}/{self.instance_id}"
        settings = platform.settings
        self.log_stream_arn = settings.arn(
            "logs", f"log-group:{log_group(endpoint)}:log-stream:{self.stream}")
        self.sandbox = Sandbox(settings.data_dir / "endpoints" / endpoint.lower() / self.instance_id)
        self.sink = LogSink(LogStore.for_database(platform.db), log_group(endpoint), self.stream,
                            tail_lines=20)
        self.url: str | None = None
        self.pid: int | None = None
        self.framework = ""
        self.instance: Instance | None = None  # set once healthy
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._exited = threading.Event()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._grace = STOP_GRACE_SECONDS
        self._thread: threading.Thread | None = None
        # Called (from the supervisor thread) when the server exits while it was serving.
        self.on_exit: Callable[[ModelServer], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Instance:
        """Prepare, start and health-check the server; raises StartFailed with the reason."""
        launched = time.monotonic()
        deadline = launched + self.spec.startup_timeout
        try:
            argv, env = self._prepare()
        except (AwsError, OSError, ValueError) as error:
            message = error.message if isinstance(error, AwsError) else str(error)
            self._say(f"modelyard: cannot prepare the model: {message}")
            self.sink.flush()
            self.sandbox.remove()
            raise StartFailed(f"{self._variant_label()}: cannot load the model data: {message}") from None
        self._thread = threading.Thread(target=self._supervise, args=(argv, env),
                                        name=f"model-server-{self.instance_id}", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self.stop()
            raise StartFailed(f"{self._variant_label()}: cannot start the model server: "
                              f"{self._start_error}")
        while not self._ready.is_set():
            if self._exited.is_set():
                self.stop()
                raise StartFailed(self._failure("exited before it was ready"))
            if time.monotonic() > deadline:
                self.stop()
                raise StartFailed(self._failure(
                    f"did not pass the ping health check within {self.spec.startup_timeout:g} "
                    "seconds (ContainerStartupHealthCheckTimeoutInSeconds)"))
            self._ready.wait(0.1)
        while not self._ping():
            if self._exited.is_set() or time.monotonic() > deadline:
                self.stop()
                raise StartFailed(self._failure("did not pass the ping health check"))
            time.sleep(0.2)
        assert self.url is not None
        self._say(f"modelyard: instance {self.instance_id} passed the ping health check")
        self.sink.flush()  # the ready line is in the log before the endpoint is InService
        self.instance = Instance(self.instance_id, self.url, self.log_stream_arn)
        record_model_setup_time(self.platform.db, self.endpoint, self.spec.name,
                                (time.monotonic() - launched) * 1e6)
        return self.instance

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the server (SIGKILL after the grace period) and remove its sandbox."""
        self._grace = grace_seconds
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=grace_seconds + 10)
        self.sandbox.remove()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def died(self) -> bool:
        """It served, then exited without being asked to stop."""
        return self.instance is not None and self._exited.is_set() and not self._stop.is_set()

    # --- preparation -------------------------------------------------------------------------

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        container = self.spec.container
        image = parse_image(container["Image"])
        if image is None:
            raise ValueError(f"image {container['Image']} cannot be served")
        environment = {str(k): str(v) for k, v in container.get("Environment", {}).items()}
        if not script_mode(image, environment):
            warm_up(image.framework)  # a warm start's zygote: its imports overlap the download
        self.framework = image.framework
        self.sandbox.create(["model", "code"])
        data_url = container.get("ModelDataUrl")
        if data_url:
            self._say(f"modelyard: downloading the model data {data_url}")
            self._extract(data_url, self.sandbox.host_path("model"), "model.tar.gz")
        submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            self._extract(submit, self.sandbox.host_path("code"), "sourcedir.tar.gz")
        settings = self.platform.settings
        env = job_environment(settings, self.spec.instance_type, {
            **environment, "SAGEMAKER_BIND_TO_PORT": "0", "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MODELYARD_ENDPOINT_NAME": self.endpoint,
        })
        argv = serve_command(image.framework)
        if script_mode(image, environment):
            argv, env = self._framework_runner(image, argv, env)
        return argv, env

    def _extract(self, uri: str, destination: Path, filename: str) -> None:
        location = S3Location.parse(uri)
        tarball = self.sandbox.root / filename
        tarball.unlink(missing_ok=True)
        self.platform.objects.fetch_to_path(location.bucket, location.key, tarball, link=False)
        try:
            extract_tarball(tarball, destination)
        except Exception as error:  # noqa: BLE001 - any archive problem is the user's data
            raise ValueError(f"cannot unpack {uri}: {error}") from None
        finally:
            tarball.unlink(missing_ok=True)

    def _framework_runner(self, image: Image, argv: list[str],
                          env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """Script-mode models run on their framework version's libraries, as training does
        (engine/framework_envs.py); the server's own libraries when that is off or fails."""
        spec = framework_envs.spec_for(image)
        if spec is None or not framework_envs.enabled():
            return argv, env
        try:
            environment = framework_envs.ensure_environment(
                spec, framework_envs.cache_root(), self._say)
        except OSError as error:
            self._say(f"modelyard: WARNING: cannot build the {spec.title} environment ({error}); "
                      "serving on modelyard's own library versions instead")
            return argv, env
        runner_dir = self.sandbox.tmp / framework_envs.RUNNER_DIR
        runner_dir.mkdir(parents=True, exist_ok=True)
        import modelyard

        (runner_dir / "modelyard").symlink_to(Path(modelyard.__file__).resolve().parent,
                                              target_is_directory=True)
        self._say(f"modelyard: serving on the {spec.title} environment {environment}")
        return [str(environment / "bin" / "python"), *argv[1:]], {
            **env,
            "PATH": os.pathsep.join(filter(None, [str(environment / "bin"), env.get("PATH")])),
            "PYTHONPATH": os.pathsep.join(filter(None, [f"/tmp/{framework_envs.RUNNER_DIR}",
                                                        env.get("PYTHONPATH")])),
            "VIRTUAL_ENV": str(environment),
        }

    # --- the supervisor thread ---------------------------------------------------------------

    def _supervise(self, argv: list[str], env: dict[str, str]) -> None:
        """The thread the process lives with: memory cgroup, start, log flushing, stop."""
        try:
            with job_memory_cgroup(self.platform.settings, self.spec.instance_type,
                                   f"endpoint-{self.instance_id}", self._say) as memory:
                self._run(argv, env, memory)
        except Exception as error:  # noqa: BLE001 - e.g. the cgroup could not be made
            if not self._started.is_set():
                self._start_error = error
                self._started.set()
            log.exception("the model server %s failed", self.stream)
        finally:
            self._exited.set()
            try:
                self.sink.flush()
            except Exception:  # noqa: BLE001 - the database may be closing at shutdown
                log.debug("could not flush the last log lines of %s", self.stream, exc_info=True)
        if not self._stop.is_set() and self.instance is not None and self.on_exit is not None:
            self.on_exit(self)  # it died while serving: the controller replaces it

    def _run(self, argv: list[str], env: dict[str, str], memory: JobCgroup | None) -> None:
        try:
            process = start_warm(self.sandbox, self.platform.settings.data_dir, "/opt/ml",
                                 argv, env, framework=self.framework,
                                 cgroup_procs=memory.procs_file if memory else None)
        except (SandboxUnavailable, OSError) as error:
            self._start_error = error
            self._started.set()
            return
        self._process = process
        self.pid = process.pid
        self._started.set()
        reader = threading.Thread(target=self._pump, args=(process,), daemon=True)
        reader.start()
        while process.poll() is None:
            if self._stop.is_set():
                self._say("modelyard: stopping the model server (SIGTERM)")
                self.sink.flush()
                terminate(process, self._grace)
                break
            self.sink.flush()
            try:
                process.wait(timeout=FLUSH_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        reader.join(timeout=5)
        if not self._stop.is_set():
            self._say(f"modelyard: the model server exited with status {process.returncode}")
            if memory is not None and process.returncode not in (0, None):
                reason = out_of_memory_reason(memory, process.returncode in (-9, 137))
                if reason:
                    self._say(f"modelyard: {reason}")

    def _pump(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n").rsplit("\r", 1)[-1]
            if not line.strip():
                continue
            self.sink.write(line)
            if self.url is None and line.startswith(READY_LINE):
                self.url = line[len(READY_LINE):].strip()
                self._ready.set()

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=PING_TIMEOUT_SECONDS) as answer:
                return answer.status == 200
        except OSError:
            return False

    # --- messages ----------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self.sink.write(line)

    def _variant_label(self) -> str:
        return f"The primary container for production variant {self.spec.name}"

    def _failure(self, what: str) -> str:
        time.sleep(0.2)  # let the reader take the last lines
        tail = [line for line in self.sink.tail() if not line.startswith("modelyard:")]
        errors = [line for line in self.sink.tail()
                  if line.startswith("ModelError:") or "OutOfMemory" in line]
        quoted = errors[-1:] if errors else (tail or ["(no output)"])[-3:]
        text = " | ".join(line.strip() for line in quoted)
        reason = (f"{self._variant_label()} {what}. Last log: {text} (CloudWatch Logs "
                  f"{log_group(self.endpoint)}, stream {self.stream})")
        return reason if len(reason) <= 1024 else reason[:1021] + "..."
