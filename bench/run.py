"""Run modelyard's benchmarks: ``python bench/run.py [objects] [listing]``."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from server_process import ServerProcess  # noqa: E402

ONE_MIB = 1024 * 1024


def timed(action, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def bench_objects(server: ServerProcess, scratch: Path) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="bench")
    data = os.urandom(ONE_MIB)

    def through_modelyard() -> None:
        s3.put_object(Bucket="bench", Key="one-mib", Body=data)
        assert len(s3.get_object(Bucket="bench", Key="one-mib")["Body"].read()) == ONE_MIB

    local = scratch / "one-mib"

    def on_local_disk() -> None:
        temporary = local.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, local)
        assert len(local.read_bytes()) == ONE_MIB

    timed(through_modelyard, 5)  # warm-up: connections, caches
    modelyard = statistics.median(timed(through_modelyard, 50))
    disk = statistics.median(timed(on_local_disk, 50))
    print(f"objects  1 MiB PUT+GET  modelyard {modelyard * 1000:7.2f} ms   "
          f"local disk {disk * 1000:7.2f} ms   ratio {modelyard / disk:6.1f}x")


def bench_listing(server: ServerProcess) -> None:
    from modelyard.config import load_settings
    from modelyard.store.db import Database
    from modelyard.store.resources import ResourceStore

    settings = load_settings(data_dir=server.data_dir)
    store = ResourceStore(Database(settings.resolved_database_url))
    now = time.time()
    rows = []
    for index in range(10_000):
        name = f"group-{index:05d}"
        arn = settings.arn("sagemaker", f"model-package-group/{name}")
        rows.append({
            "kind": "ModelPackageGroup", "name": name, "arn": arn, "status": "Completed",
            "parent": None, "creation_time": now - index, "last_modified_time": now - index,
            "document": {"ModelPackageGroupName": name, "ModelPackageGroupArn": arn,
                         "CreationTime": now - index, "ModelPackageGroupStatus": "Completed",
                         "ModelPackageGroupDescription": "benchmark group " * 4},
        })
    store.create_many(rows)
    client = server.client("sagemaker")
    describe = timed(lambda: client.describe_model_package_group(
        ModelPackageGroupName="group-05000"), 200)
    listing = timed(lambda: client.list_model_package_groups(MaxResults=100), 200)
    filtered = timed(lambda: client.list_model_package_groups(
        MaxResults=100, NameContains="group-09", SortBy="Name"), 100)
    for label, samples in (("Describe", describe), ("List 100", listing),
                           ("List 100 NameContains+SortBy Name", filtered)):
        median = statistics.median(samples) * 1000
        p95 = statistics.quantiles(samples, n=20)[-1] * 1000
        print(f"listing  {label:34s} median {median:6.2f} ms  p95 {p95:6.2f} ms  "
              f"(10,000 stored; target List median < 50 ms)")


def main(argv: list[str]) -> int:
    wanted = set(argv) or {"objects", "listing"}
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as scratch:
        server = ServerProcess.start(Path(scratch) / "data")
        try:
            if "objects" in wanted:
                bench_objects(server, Path(scratch))
            if "listing" in wanted:
                bench_listing(server)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
