"""The object store: buckets and keys with S3's semantics, behind one interface.

``ObjectStore`` is what the S3 handlers and the job code use; ``LocalObjectStore``
(``local_objects.py``) keeps the key index in SQL and the bytes in files, and an S3-backed
store can implement the same interface later. Names and keys are checked here, once, for
every backend: a key is an opaque string to S3, but ours also reach job sandboxes as
relative paths, so keys that would climb out of a directory are refused.
"""

from __future__ import annotations

import abc
import ipaddress
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..api.errors import AwsError
from .spool import SpooledBody, entity_too_large, spool_stream

__all__ = [
    "BucketInfo",
    "CompletedPart",
    "ListPage",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "PartInfo",
    "PartsPage",
    "SpooledBody",
    "UploadInfo",
    "UploadsPage",
    "entity_too_large",
    "spool_stream",
]

MAX_KEY_BYTES = 1024
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_METADATA_BYTES = 2 * 1024
DEFAULT_CONTENT_TYPE = "binary/octet-stream"

# Headers S3 stores with an object and returns on GET/HEAD, by botocore member name.
SYSTEM_METADATA = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "WebsiteRedirectLocation",
)
# Server-side encryption as requested, kept (as strings) in the same per-object system
# metadata: modelyard does not encrypt, it reports what S3 would. Objects stored without
# these entries report S3's default, SSE-S3 (AES256).
ENCRYPTION_METADATA = (
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "SSEKMSEncryptionContext",
    "BucketKeyEnabled",  # "true" / "false"
)
DEFAULT_ENCRYPTION = "AES256"


# --- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketInfo:
    name: str
    owner: str
    region: str
    created: float


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str  # without quotes: md5 hex, or "<md5 of part md5s>-<parts>" for multipart
    last_modified: float
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-*, lower-case names
    system_metadata: dict[str, str] = field(default_factory=dict)  # see SYSTEM_METADATA
    parts_count: int | None = None


@dataclass(frozen=True)
class ListPage:
    contents: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned: pass it back as ``after`` for the next page.
    next_marker: str | None


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    bucket: str
    key: str
    owner: str
    initiated: float
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    system_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadsPage:
    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    size: int
    etag: str  # md5 hex, no quotes
    last_modified: float


@dataclass(frozen=True)
class PartsPage:
    upload: UploadInfo
    parts: list[PartInfo]
    is_truncated: bool
    next_part_number_marker: int | None


@dataclass(frozen=True)
class CompletedPart:
    part_number: int
    etag: str  # as the client listed it; quotes are ignored


class ObjectReader:
    """An open object: ``info`` plus a byte range of its content, read in chunks.

    The file stays readable even if the object is replaced or deleted meanwhile, so a
    GET that has started always returns the version it started with.
    """

    def __init__(self, info: ObjectInfo, file: BinaryIO, offset: int = 0,
                 length: int | None = None) -> None:
        self.info = info
        self.offset = offset
        self.length = info.size - offset if length is None else length
        self._file = file

    def slice(self, offset: int, length: int) -> "ObjectReader":
        return ObjectReader(self.info, self._file, offset, length)

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            remaining = self.length
            while remaining > 0:
                data = os.pread(self._file.fileno(), min(chunk_size, remaining),
                                self.offset + self.length - remaining)
                if not data:
                    raise OSError(f"object {self.info.bucket}/{self.info.key} is truncated")
                remaining -= len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


# --- the interface ----------------------------------------------------------------------


class ObjectStore(abc.ABC):
    """Buckets and objects. Every method is synchronous, thread-safe, and raises AwsError."""

    @property
    @abc.abstractmethod
    def spool_dir(self) -> Path:
        """Where request bodies are spooled before put_object/upload_part take them
        (for the local store, on the same filesystem, so taking one is a rename)."""

    @abc.abstractmethod
    def create_bucket(self, name: str, *, owner: str, region: str, now: float) -> BucketInfo:
        """Raise BucketAlreadyOwnedByYou if ``owner`` has it, BucketAlreadyExists if not."""

    @abc.abstractmethod
    def head_bucket(self, name: str) -> BucketInfo: ...

    @abc.abstractmethod
    def list_buckets(self) -> list[BucketInfo]: ...

    @abc.abstractmethod
    def delete_bucket(self, name: str) -> None:
        """Only an empty bucket without in-progress uploads (else BucketNotEmpty)."""

    @abc.abstractmethod
    def put_object(
        self, bucket: str, key: str, body: SpooledBody, *, now: float,
        content_type: str = DEFAULT_CONTENT_TYPE, metadata: dict[str, str] | None = None,
        system_metadata: dict[str, str] | None = None,
        if_match: str | None = None, if_none_match: str | None = None,
    ) -> ObjectInfo:
        """Store ``body`` (the store takes its file). ``if_none_match="*"`` only creates."""

    @abc.abstractmethod
    def put_file(
        self, bucket: str, key: str, source: Path, *, now: float,
        content_type: str = DEFAULT_CONTENT_TYPE, metadata: dict[str, str] | None = None,
        link: bool = True, md5_hex: str | None = None,
    ) -> ObjectInfo:
        """Store a regular file, e.g. a job's output. With ``link`` the store may hard-link
        it instead of copying, and then makes it read-only: do not modify it afterwards.
        ``md5_hex`` is the file's MD5 if the caller computed it while writing the file."""

    @abc.abstractmethod
    def get_object_info(self, bucket: str, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def open_object(self, bucket: str, key: str) -> ObjectReader:
        """Open for reading; the caller closes the reader (iter_chunks does at the end)."""

    @abc.abstractmethod
    def fetch_to_path(self, bucket: str, key: str, destination: Path, *,
                      link: bool = True) -> ObjectInfo:
        """Write the object to ``destination`` (must not exist). With ``link`` it may be a
        hard link to the stored, read-only bytes: readers must not modify it in place."""

    @abc.abstractmethod
    def delete_object(self, bucket: str, key: str) -> bool:
        """True if something was deleted; deleting a missing key is not an error."""

    @abc.abstractmethod
    def copy_object(
        self, source_bucket: str, source_key: str, bucket: str, key: str, *, now: float,
        replace_metadata: bool = False, content_type: str | None = None,
        metadata: dict[str, str] | None = None, system_metadata: dict[str, str] | None = None,
        encryption: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Copy; with ``replace_metadata`` the given metadata replaces the source's.

        ``encryption`` (ENCRYPTION_METADATA entries), if given, replaces the source's
        whatever the directive: S3 encrypts a copy as the copy request says."""

    @abc.abstractmethod
    def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "",
        after: str | None = None, max_keys: int = 1000,
    ) -> ListPage:
        """Keys in UTF-8 byte order, grouped by ``delimiter`` after ``prefix``.

        ``after`` is exclusive; if it names a common prefix, the whole group is skipped
        (so a ListPage.next_marker resumes exactly where the page ended).
        """

    @abc.abstractmethod
    def create_multipart_upload(
        self, bucket: str, key: str, *, owner: str, now: float,
        content_type: str = DEFAULT_CONTENT_TYPE, metadata: dict[str, str] | None = None,
        system_metadata: dict[str, str] | None = None,
    ) -> UploadInfo: ...

    @abc.abstractmethod
    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int,
                    body: SpooledBody, *, now: float) -> PartInfo: ...

    @abc.abstractmethod
    def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, part_number: int, *,
        source_bucket: str, source_key: str, byte_range: tuple[int, int] | None, now: float,
    ) -> PartInfo:
        """``byte_range`` is inclusive (first, last), already checked against the source."""

    @abc.abstractmethod
    def complete_multipart_upload(self, bucket: str, key: str, upload_id: str,
                                  parts: list[CompletedPart], *, now: float) -> ObjectInfo: ...

    @abc.abstractmethod
    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    @abc.abstractmethod
    def list_parts(self, bucket: str, key: str, upload_id: str, *,
                   after_part: int = 0, max_parts: int = 1000) -> PartsPage: ...

    @abc.abstractmethod
    def list_multipart_uploads(
        self, bucket: str, *, prefix: str = "", delimiter: str = "",
        key_marker: str | None = None, upload_id_marker: str | None = None,
        max_uploads: int = 1000,
    ) -> UploadsPage: ...


# --- names and keys ---------------------------------------------------------------------

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> None:
    """S3's naming rules for general purpose buckets (InvalidBucketName)."""
    problem = None
    if not 3 <= len(name) <= 63:
        problem = "must be between 3 and 63 characters long"
    elif not _BUCKET_NAME.fullmatch(name):
        problem = ("may contain only lowercase letters, digits, dots and hyphens, and must "
                   "begin and end with a letter or digit")
    elif ".." in name or ".-" in name or "-." in name:
        problem = "must not contain two adjacent periods, or a period next to a hyphen"
    elif _is_ip_address(name):
        problem = "must not be formatted as an IP address"
    elif name.startswith(_RESERVED_BUCKET_PREFIXES) or name.endswith(_RESERVED_BUCKET_SUFFIXES):
        problem = "uses a prefix or suffix that S3 reserves"
    if problem:
        raise AwsError("InvalidBucketName", f"The bucket name '{name}' is not valid: it "
                       f"{problem}.", BucketName=name)


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def check_key(key: str) -> bytes:
    """Refuse keys that are not valid UTF-8, too long, or could escape a directory.

    Returns the UTF-8 bytes, whose order is S3's listing order.
    """
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise AwsError("InvalidArgument", "The object key is not valid UTF-8. Send keys as "
                       "UTF-8, percent-encoded in the URL.", Key=key) from None
    if not encoded:
        raise AwsError("InvalidArgument", "The object key must not be empty.", Key=key)
    if len(encoded) > MAX_KEY_BYTES:
        raise AwsError("KeyTooLongError", f"Your key is {len(encoded)} bytes long; the "
                       f"maximum is {MAX_KEY_BYTES} bytes (UTF-8). Use a shorter key.",
                       Key=key[:100])
    problem = None
    if "\x00" in key:
        problem = "contains a NUL character"
    elif key.startswith("/"):
        problem = "starts with '/'"
    elif ".." in key.split("/"):
        problem = "contains a '..' path segment"
    if problem:
        raise AwsError("InvalidArgument", f"The object key '{key}' {problem}. modelyard "
                       "hands keys to jobs as relative paths, so keys must not start with "
                       "'/', contain '..' segments, or contain NUL; rename the object.",
                       Key=key)
    return encoded


def check_metadata(metadata: dict[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode("utf-8", "replace")) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise AwsError("MetadataTooLarge", f"Your user metadata is {size} bytes; S3 allows "
                       f"at most {MAX_METADATA_BYTES} bytes of x-amz-meta-* headers. Store "
                       "large values in the object or a separate one.")


def check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise AwsError("InvalidArgument", f"Part number {part_number} is not valid: it must "
                       f"be an integer between 1 and {MAX_PART_NUMBER}, inclusive.")


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match header value names ``etag`` (or is ``*``)."""
    candidates = [part.strip().removeprefix("W/").strip('"') for part in header.split(",")]
    return "*" in candidates or etag in candidates


# --- errors the store raises ------------------------------------------------------------


def no_such_bucket(bucket: str) -> AwsError:
    return AwsError("NoSuchBucket", f"The bucket '{bucket}' does not exist. Create it first "
                    f"(aws s3 mb s3://{bucket}) or check the name.", 404, BucketName=bucket)


def no_such_key(bucket: str, key: str) -> AwsError:
    return AwsError("NoSuchKey", f"The key '{key}' does not exist in bucket '{bucket}'. "
                    "List the bucket to see which keys it holds.", 404, Key=key,
                    BucketName=bucket)


def no_such_upload(bucket: str, key: str, upload_id: str) -> AwsError:
    return AwsError("NoSuchUpload", f"The multipart upload '{upload_id}' for '{bucket}/{key}' "
                    "does not exist: it was completed or aborted, or the upload ID, bucket "
                    "or key is wrong. Start a new upload with CreateMultipartUpload.", 404,
                    UploadId=upload_id, Key=key, BucketName=bucket)


def precondition_failed(bucket: str, key: str, condition: str) -> AwsError:
    return AwsError("PreconditionFailed", f"At least one of the preconditions you specified "
                    f"did not hold for '{bucket}/{key}' ({condition}).", 412,
                    Condition=condition, Key=key, BucketName=bucket)


# Imported last: the local backend builds on the definitions above.
from .local_objects import LocalObjectStore  # noqa: E402
