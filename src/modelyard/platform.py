"""The long-lived parts of a running server, built once and shared by every request."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from . import autoscaling, cloudwatch, events, lambdas, monitor, sns, tuning
from .config import Settings
from .engine import processing_job, training_job, transform_job
from .engine.clock import Clock, clock_from_environment
from .engine.deliveries import Deliveries
from .engine.executor import Executor, JobKind
from .engine.sandbox import check_sandbox_support
from .hosting import experiments as inference_experiments
from .hosting.controller import EndpointController
from .hosting.live import LiveEndpoints
from .pipelines.engine import PipelineEngine
from .store.db import Database
from .store.objects import LocalObjectStore, ObjectStore
from .store.resources import ResourceStore


@dataclass
class Platform:
    settings: Settings
    clock: Clock
    db: Database
    resources: ResourceStore
    objects: ObjectStore
    executor: Executor = None  # type: ignore[assignment] - set by open()
    pipelines: PipelineEngine = None  # type: ignore[assignment] - set by open()
    # What the endpoint controller serves now; the SageMaker Runtime routes by it.
    live_endpoints: LiveEndpoints = None  # type: ignore[assignment] - set by open()
    # Starts and stops endpoints' model servers and publishes them to live_endpoints.
    endpoints: EndpointController = None  # type: ignore[assignment] - set by open()
    # Runs the durable outbox: EventBridge targets, SNS deliveries, async Lambda invokes.
    deliveries: Deliveries = None  # type: ignore[assignment] - set by open()

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> "Platform":
        database = Database(settings.resolved_database_url)
        database.upgrade_schema()
        objects = LocalObjectStore(database, settings.data_dir / "objects", settings)
        objects.recover()
        platform = cls(
            settings=settings,
            clock=clock or clock_from_environment(),
            db=database,
            resources=ResourceStore(database),
            objects=objects,
        )
        platform.live_endpoints = LiveEndpoints()
        platform.executor = Executor(platform, JOB_KINDS, settings.max_concurrent_jobs)
        platform.pipelines = PipelineEngine(platform)
        platform.executor.on_finished.append(platform.pipelines.wake)
        _prepare_job_sandboxes()
        platform.executor.start()
        platform.pipelines.start()
        platform.endpoints = EndpointController(platform)
        platform.endpoints.start()
        platform.deliveries = Deliveries(platform)
        for component in _COMPONENTS:
            component.start(platform)
        platform.deliveries.start()
        return platform

    def close(self) -> None:
        if self.deliveries is not None:
            self.deliveries.stop()
        for component in reversed(_COMPONENTS):
            component.stop(self)
        self.pipelines.stop()
        if self.endpoints is not None:
            self.endpoints.shutdown()
        self.executor.shutdown()
        self.db.close()


# The automation services around SageMaker, each with start(platform) and stop(platform).
_COMPONENTS = (cloudwatch, sns, events, lambdas, monitor, autoscaling, tuning,
               inference_experiments)

JOB_KINDS = {
    training_job.KIND: JobKind(training_job.run_training_job, training_job.recover_training_job),
    processing_job.KIND: JobKind(
        processing_job.run_processing_job, processing_job.recover_processing_job),
    transform_job.KIND: JobKind(transform_job.run_transform_job, transform_job.recover_transform_job),
}


def _prepare_job_sandboxes() -> None:
    if os.geteuid() == 0:
        # A real mount point keeps the rest of /opt visible inside job sandboxes.
        os.makedirs("/opt/ml", exist_ok=True)
    problem = check_sandbox_support()
    if problem:
        logging.getLogger("modelyard").warning("jobs cannot run on this machine: %s", problem)
