"""Moving a job's data: S3 inputs into its sandbox, its outputs back to S3.

Jobs reach the object store directly (not over HTTP): it is the same store the S3 API
serves, so what a job writes is visible to clients as soon as the upload commits.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..api.errors import AwsError, validation_error
from ..store.objects import ObjectStore


class JobDataError(Exception):
    """Data a job needs is missing or malformed; the message becomes its FailureReason."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, member: str = "S3Uri") -> "S3Location":
        if not uri.startswith("s3://"):
            raise validation_error(f"{member} {uri!r} must be an s3://bucket/key URI.")
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not bucket:
            raise validation_error(f"{member} {uri!r} names no bucket.")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, *parts: str) -> "S3Location":
        key = "/".join(part.strip("/") for part in (self.key, *parts) if part.strip("/"))
        return S3Location(self.bucket, key)


def download_input(objects: ObjectStore, uri: str, data_type: str, destination: Path) -> int:
    """Fetch an S3Prefix or ManifestFile input into ``destination``; return the file count."""
    location = S3Location.parse(uri)
    destination.mkdir(parents=True, exist_ok=True)
    if data_type == "ManifestFile":
        pairs = _manifest_entries(objects, location)
    elif data_type == "S3Prefix":
        pairs = _prefix_entries(objects, location)
    else:
        raise JobDataError(
            f"S3DataType {data_type} is not supported by modelyard yet; use S3Prefix or "
            "ManifestFile."
        )
    if not pairs:
        raise JobDataError(f"No S3 objects found under S3 URL {uri!r}.")
    for source, relative in pairs:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        # A copy, not a link: a job running as root could otherwise rewrite stored bytes.
        try:
            objects.fetch_to_path(source.bucket, source.key, target, link=False)
        except AwsError as error:
            raise JobDataError(f"Cannot read {source.uri}: {error.message}") from None
    return len(pairs)


def _prefix_entries(objects: ObjectStore, location: S3Location) -> list[tuple[S3Location, str]]:
    prefix = location.key
    # Keys are placed relative to the prefix when it ends at a "directory" boundary,
    # else relative to the prefix's parent (s3://b/data/train matches data/train-2/x).
    parent = prefix if prefix.endswith("/") or not prefix else posixpath.dirname(prefix)
    entries = []
    for key in all_keys(objects, location.bucket, prefix):
        if key.endswith("/"):
            continue  # a "folder" marker object
        if key == prefix:
            relative = posixpath.basename(key)
        elif key[len(prefix):].startswith("/"):
            relative = key[len(prefix):].lstrip("/")
        else:
            relative = key[len(parent):].lstrip("/") if parent else key
        entries.append((S3Location(location.bucket, key), _safe_relative(relative)))
    return entries


def _manifest_entries(objects: ObjectStore, location: S3Location) -> list[tuple[S3Location, str]]:
    try:
        reader = objects.open_object(location.bucket, location.key)
        manifest = json.loads(b"".join(reader.iter_chunks()))
        base = S3Location.parse(manifest[0]["prefix"], "manifest prefix")
        relatives = [str(item) for item in manifest[1:]]
    except (ValueError, KeyError, IndexError, TypeError, AwsError) as error:
        raise JobDataError(
            f"The manifest {location.uri} must be a JSON array "
            f'[{{"prefix": "s3://bucket/prefix/"}}, "relative/key", ...]: {error}'
        ) from None
    return [
        (S3Location(base.bucket, base.key + relative), _safe_relative(relative))
        for relative in relatives
    ]


def all_keys(objects: ObjectStore, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, page by page; JobDataError when the bucket is unreadable."""
    keys, after = [], None
    while True:
        try:
            page = objects.list_objects(bucket, prefix=prefix, after=after, max_keys=1000)
        except AwsError as error:
            raise JobDataError(f"Cannot list s3://{bucket}/{prefix}: {error.message}") from None
        keys += [item.key for item in page.contents]
        if not page.is_truncated:
            return keys
        after = page.next_marker


def _safe_relative(relative: str) -> str:
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts) or not parts:
        raise JobDataError(f"The input key path {relative!r} cannot be placed in a job.")
    return "/".join(parts)


def upload_directory(objects: ObjectStore, source: Path, uri: str, *, now: float) -> int:
    """Upload every file under ``source`` to ``uri``/relative/path; return the count."""
    location = S3Location.parse(uri)
    count = 0
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.is_symlink():
            relative = path.relative_to(source).as_posix()
            target = location.child(relative)
            try:
                objects.put_file(target.bucket, target.key, path, now=now)
            except AwsError as error:
                raise JobDataError(f"Cannot write {target.uri}: {error.message}") from None
            count += 1
    return count


def extract_tarball(tarball: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:*") as archive:
        archive.extractall(destination, filter="data")


def directory_has_files(path: Path) -> bool:
    return path.is_dir() and any(child.is_file() for child in path.rglob("*"))


def sync_down(objects: ObjectStore, uri: str, destination: Path) -> int:
    """Checkpoints: fetch what exists under ``uri``; nothing there is fine."""
    try:
        return download_input(objects, uri.rstrip("/") + "/", "S3Prefix", destination)
    except JobDataError:
        return 0

