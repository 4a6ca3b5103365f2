"""SQL tables of the embedded object store, and how their rows map to value objects.

Keys are stored as UTF-8 bytes in a binary column: BLOB in SQLite and bytea in
PostgreSQL compare bytewise, which is S3's listing order, so prefix / delimiter / marker
listings are range scans of the primary key.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
)

from .db import metadata
from .objects import ObjectInfo, PartInfo, UploadInfo

buckets_table = Table(
    "s3_buckets",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("created", Float, nullable=False),
)

objects_table = Table(
    "s3_objects",
    metadata,
    Column("bucket", String(63), ForeignKey("s3_buckets.name"), primary_key=True),
    Column("key", LargeBinary(1024), primary_key=True),
    Column("blob", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("last_modified", Float, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("metadata", Text, nullable=False),  # JSON: {"user": {...}, "system": {...}}
    Column("parts_count", Integer, nullable=True),
)

uploads_table = Table(
    "s3_uploads",
    metadata,
    Column("upload_id", String(64), primary_key=True),
    Column("bucket", String(63), ForeignKey("s3_buckets.name"), nullable=False),
    Column("key", LargeBinary(1024), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("initiated", Float, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Index("ix_s3_uploads_bucket_key", "bucket", "key", "upload_id"),
)

parts_table = Table(
    "s3_parts",
    metadata,
    Column("upload_id", String(64), ForeignKey("s3_uploads.upload_id"), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("blob", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(32), nullable=False),
    Column("last_modified", Float, nullable=False),
)


def object_is(bucket: str, key_bytes: bytes) -> Any:
    return and_(objects_table.c.bucket == bucket, objects_table.c.key == key_bytes)


def part_is(upload_id: str, part_number: int) -> Any:
    return and_(parts_table.c.upload_id == upload_id, parts_table.c.part_number == part_number)


def dump_metadata(user: dict[str, str], system: dict[str, str]) -> str:
    return json.dumps({"user": user, "system": system}, sort_keys=True)


def load_metadata(text: str) -> tuple[dict[str, str], dict[str, str]]:
    data = json.loads(text)
    return data.get("user", {}), data.get("system", {})


def object_row(info: ObjectInfo, blob: str) -> dict[str, Any]:
    """The columns an object's row gets, except bucket and key."""
    return dict(blob=blob, size=info.size, etag=info.etag, last_modified=info.last_modified,
                content_type=info.content_type, parts_count=info.parts_count,
                metadata=dump_metadata(info.metadata, info.system_metadata))


def object_info(row: Any) -> ObjectInfo:
    user, system = load_metadata(row.metadata)
    return ObjectInfo(row.bucket, bytes(row.key).decode(), row.size, row.etag,
                      row.last_modified, row.content_type, user, system, row.parts_count)


def upload_info(row: Any) -> UploadInfo:
    user, system = load_metadata(row.metadata)
    return UploadInfo(row.upload_id, row.bucket, bytes(row.key).decode(), row.owner,
                      row.initiated, row.content_type, user, system)


def part_info(row: Any) -> PartInfo:
    return PartInfo(row.part_number, row.size, row.etag, row.last_modified)
