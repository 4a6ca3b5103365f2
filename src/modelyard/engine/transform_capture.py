"""Data capture of a batch transform job (``DataCaptureConfig`` on CreateTransformJob).

As SageMaker does, the job does not copy its data: when it completes, it writes two
manifests under ``DestinationS3Uri``, ``input/yyyy/mm/dd/hh/<uuid>.json`` and
``output/yyyy/mm/dd/hh/<uuid>.json`` (the hour of the job's start time), each a JSON array
``[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]`` naming the input objects the
job read and the ``.out`` objects it wrote. With ``GenerateInferenceId`` every output
record gets an inference id (a random UUID) and the job's start time: two more CSV
columns, or ``SageMakerInferenceId`` / ``SageMakerInferenceTime`` members of a JSON record.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .channels import S3Location, all_keys

if TYPE_CHECKING:
    from ..platform import Platform

ID_MEMBER, TIME_MEMBER = "SageMakerInferenceId", "SageMakerInferenceTime"


def output_format(job: dict[str, Any]) -> str:
    """``csv`` or ``json``: how output records are tagged with inference ids."""
    accept = str(job["TransformOutput"].get("Accept") or
                 job["TransformInput"].get("ContentType") or "text/csv").lower()
    return "json" if "json" in accept else "csv"


def add_inference_ids(path: Path, fmt: str, start_time: float) -> None:
    """Rewrite an output file with an inference id and time on every record (one a line)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_time))
    lines = path.read_bytes().decode("utf-8").splitlines()
    tagged = []
    for line in lines:
        if not line.strip():
            continue
        inference_id = str(uuid.uuid4())
        if fmt == "json":
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            if isinstance(value, dict):
                value.update({ID_MEMBER: inference_id, TIME_MEMBER: stamp})
                tagged.append(json.dumps(value, separators=(",", ":")))
                continue
            if value is not None:
                tagged.append(json.dumps({"SageMakerOutput": value, ID_MEMBER: inference_id,
                                          TIME_MEMBER: stamp}, separators=(",", ":")))
                continue
        tagged.append(f"{line},{inference_id},{stamp}")
    path.write_bytes(("\n".join(tagged) + "\n").encode("utf-8") if tagged else b"")


def write_manifests(platform: "Platform", job: dict[str, Any], outputs: list[str],
                    start_time: float) -> tuple[str, str]:
    """Write the input and output manifests of a completed job; their URIs."""
    capture = job["DataCaptureConfig"]
    destination = S3Location.parse(capture["DestinationS3Uri"], "DataCaptureConfig.DestinationS3Uri")
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(start_time))
    name = f"{uuid.uuid4()}.json"
    source = job["TransformInput"]["DataSource"]["S3DataSource"]
    input_manifest = _input_manifest(platform, source["S3Uri"], source["S3DataType"])
    output_base = job["TransformOutput"]["S3OutputPath"].rstrip("/") + "/"
    output_manifest = [{"prefix": output_base}, *[relative + ".out" for relative in outputs]]
    written = []
    with tempfile.TemporaryDirectory(dir=platform.settings.data_dir) as scratch:
        for kind, manifest in (("input", input_manifest), ("output", output_manifest)):
            target = destination.child(kind, hour, name)
            path = Path(scratch) / kind
            path.write_text(json.dumps(manifest, separators=(",", ":")), encoding="utf-8")
            platform.objects.put_file(target.bucket, target.key, path, link=False,
                                      content_type="application/json",
                                      now=platform.clock.now())
            written.append(target.uri)
    return written[0], written[1]


def _input_manifest(platform: "Platform", uri: str, data_type: str) -> list[Any]:
    location = S3Location.parse(uri)
    if data_type == "ManifestFile":  # the job's own manifest already has SageMaker's shape
        reader = platform.objects.open_object(location.bucket, location.key)
        return list(json.loads(b"".join(reader.iter_chunks())))
    prefix = location.key
    keys = [key for key in all_keys(platform.objects, location.bucket, prefix) if not key.endswith("/")]
    if prefix and not prefix.endswith("/") and all(k.startswith(prefix + "/") for k in keys):
        prefix += "/"
    base = prefix if prefix.endswith("/") or not prefix else posixpath.dirname(prefix)
    base = base if not base or base.endswith("/") else base + "/"
    return [{"prefix": f"s3://{location.bucket}/{base}"}, *[key[len(base):] for key in keys]]
