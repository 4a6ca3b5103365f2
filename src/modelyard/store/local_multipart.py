"""Multipart uploads of the embedded object store (mixed into ``LocalObjectStore``).

Parts are blob files like objects; completing an upload concatenates them into one new
blob and commits it through the store's ``_commit_object``, so the crash-safety rules of
``local_objects.py`` hold here too.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from ..api.errors import AwsError
from .object_tables import (
    dump_metadata,
    part_info,
    part_is,
    parts_table,
    upload_info,
    uploads_table,
)
from .objects import (
    DEFAULT_CONTENT_TYPE,
    MIN_PART_BYTES,
    CompletedPart,
    ObjectInfo,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
    check_key,
    check_metadata,
    check_part_number,
    no_such_upload,
)
from .spool import SpooledBody, entity_too_large


class MultipartUploads:
    """S3 multipart uploads; relies on the store's db, blobs and commit steps."""

    def create_multipart_upload(
        self, bucket: str, key: str, *, owner: str, now: float,
        content_type: str = DEFAULT_CONTENT_TYPE, metadata: dict[str, str] | None = None,
        system_metadata: dict[str, str] | None = None,
    ) -> UploadInfo:
        key_bytes = check_key(key)
        check_metadata(metadata or {})
        upload = UploadInfo(secrets.token_hex(24), bucket, key, owner, now, content_type,
                            dict(metadata or {}), dict(system_metadata or {}))
        with self.db.write() as connection:
            self._require_bucket(connection, bucket)
            connection.execute(insert(uploads_table).values(
                upload_id=upload.upload_id, bucket=bucket, key=key_bytes, owner=owner,
                initiated=now, content_type=content_type,
                metadata=dump_metadata(upload.metadata, upload.system_metadata)))
        return upload

    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int,
                    body: SpooledBody, *, now: float) -> PartInfo:
        key_bytes = check_key(key)
        check_part_number(part_number)
        if body.size > self.settings.max_object_bytes:
            raise entity_too_large(body.size, self.settings.max_object_bytes)
        blob = self.blobs.adopt(body.path)
        part = PartInfo(part_number, body.size, body.md5_hex, now)
        try:
            with self.db.write() as connection:
                self._require_upload(connection, bucket, key, key_bytes, upload_id)
                replaced = connection.execute(select(parts_table.c.blob)
                                              .where(part_is(upload_id, part_number))).scalar()
                values = dict(blob=blob, size=part.size, etag=part.etag, last_modified=now)
                if replaced is None:
                    connection.execute(insert(parts_table).values(
                        upload_id=upload_id, part_number=part_number, **values))
                else:
                    connection.execute(update(parts_table)
                                       .where(part_is(upload_id, part_number)).values(**values))
        except BaseException:
            self.blobs.discard([blob])
            raise
        if replaced is not None:
            self.blobs.discard([replaced])
        return part

    def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, part_number: int, *,
        source_bucket: str, source_key: str, byte_range: tuple[int, int] | None, now: float,
    ) -> PartInfo:
        def copy_range(info: ObjectInfo, path: Path) -> SpooledBody:
            first, last = byte_range if byte_range is not None else (0, info.size - 1)
            if last - first + 1 > self.settings.max_object_bytes:
                raise entity_too_large(last - first + 1, self.settings.max_object_bytes)
            return self.blobs.stage_range(path, first, last - first + 1)

        staged = self._with_blob(source_bucket, source_key, copy_range)
        try:
            return self.upload_part(bucket, key, upload_id, part_number, staged, now=now)
        finally:
            staged.discard()

    def complete_multipart_upload(self, bucket: str, key: str, upload_id: str,
                                  parts: list[CompletedPart], *, now: float) -> ObjectInfo:
        key_bytes = check_key(key)
        if not parts:
            raise AwsError("MalformedXML", "The CompleteMultipartUpload request lists no "
                           "parts. List every part you uploaded, with its ETag.")
        numbers = [part.part_number for part in parts]
        if any(later <= earlier for earlier, later in zip(numbers, numbers[1:])):
            raise AwsError("InvalidPartOrder", "The list of parts was not in ascending order "
                           "of part number, or listed a part twice. Sort the parts by "
                           "PartNumber.", UploadId=upload_id)
        with self.db.read() as connection:
            upload = self._require_upload(connection, bucket, key, key_bytes, upload_id)
            stored = {row.part_number: row for row in connection.execute(
                select(parts_table).where(parts_table.c.upload_id == upload_id))}
        chosen = [_stored_part(part, stored, upload_id) for part in parts]
        for row in chosen[:-1]:
            if row.size < MIN_PART_BYTES:
                raise AwsError("EntityTooSmall", f"Part {row.part_number} is {row.size} bytes; "
                               f"every part except the last must be at least {MIN_PART_BYTES} "
                               "bytes. Upload larger parts.", PartNumber=str(row.part_number),
                               ProposedSize=str(row.size), MinSizeAllowed=str(MIN_PART_BYTES))
        try:
            blob = self.blobs.concatenate([self.blobs.path(row.blob) for row in chosen])
        except FileNotFoundError:
            raise _part_replaced(upload_id) from None
        digest = hashlib.md5(b"".join(bytes.fromhex(row.etag) for row in chosen)).hexdigest()
        template = upload_info(upload)
        info = ObjectInfo(bucket, key, sum(row.size for row in chosen), f"{digest}-{len(chosen)}",
                          now, template.content_type, template.metadata,
                          template.system_metadata, parts_count=len(chosen))
        expected = {row.part_number: row.blob for row in chosen}

        def retire_upload(connection: Connection) -> list[str]:
            self._require_upload(connection, bucket, key, key_bytes, upload_id)
            current = {row.part_number: row.blob for row in connection.execute(
                select(parts_table.c.part_number, parts_table.c.blob)
                .where(parts_table.c.upload_id == upload_id))}
            if any(current.get(number) != name for number, name in expected.items()):
                raise _part_replaced(upload_id)
            connection.execute(delete(parts_table).where(parts_table.c.upload_id == upload_id))
            connection.execute(delete(uploads_table).where(uploads_table.c.upload_id == upload_id))
            return list(current.values())  # unlisted parts are discarded, as in S3

        self._commit_object(info, key_bytes, blob, also=retire_upload)
        return info

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        key_bytes = check_key(key)
        with self.db.write() as connection:
            self._require_upload(connection, bucket, key, key_bytes, upload_id)
            blobs = list(connection.execute(select(parts_table.c.blob)
                                            .where(parts_table.c.upload_id == upload_id)).scalars())
            connection.execute(delete(parts_table).where(parts_table.c.upload_id == upload_id))
            connection.execute(delete(uploads_table).where(uploads_table.c.upload_id == upload_id))
        self.blobs.discard(blobs)

    def list_parts(self, bucket: str, key: str, upload_id: str, *,
                   after_part: int = 0, max_parts: int = 1000) -> PartsPage:
        key_bytes = check_key(key)
        with self.db.read() as connection:
            upload = self._require_upload(connection, bucket, key, key_bytes, upload_id)
            rows = connection.execute(
                select(parts_table)
                .where(and_(parts_table.c.upload_id == upload_id,
                            parts_table.c.part_number > after_part))
                .order_by(parts_table.c.part_number).limit(max_parts + 1)).all()
        parts = [part_info(row) for row in rows]
        truncated = len(parts) > max_parts
        parts = parts[:max_parts]
        return PartsPage(upload_info(upload), parts, truncated,
                         parts[-1].part_number if parts else None)

    def list_multipart_uploads(
        self, bucket: str, *, prefix: str = "", delimiter: str = "",
        key_marker: str | None = None, upload_id_marker: str | None = None,
        max_uploads: int = 1000,
    ) -> UploadsPage:
        # In-progress uploads are few, so grouping happens here rather than in SQL.
        prefix_bytes = prefix.encode()
        conditions = [uploads_table.c.bucket == bucket, uploads_table.c.key >= prefix_bytes]
        if prefix_bytes and (upper := successor(prefix_bytes)) is not None:
            conditions.append(uploads_table.c.key < upper)
        if key_marker:
            marker = key_marker.encode()
            if upload_id_marker:
                conditions.append(or_(uploads_table.c.key > marker, and_(
                    uploads_table.c.key == marker, uploads_table.c.upload_id > upload_id_marker)))
            else:
                conditions.append(uploads_table.c.key > marker)
        with self.db.read() as connection:
            self._require_bucket(connection, bucket)
            rows = connection.execute(select(uploads_table).where(and_(*conditions))
                                      .order_by(uploads_table.c.key, uploads_table.c.upload_id))
            uploads: list[UploadInfo] = []
            prefixes: list[str] = []
            last: tuple[str, str | None] = ("", None)  # the next page's key / upload markers
            for row in rows:
                upload = upload_info(row)
                found = upload.key.find(delimiter, len(prefix)) if delimiter else -1
                group = upload.key[: found + len(delimiter)] if found >= 0 else None
                if group is not None and prefixes and prefixes[-1] == group:
                    continue
                if len(uploads) + len(prefixes) >= max_uploads:
                    return UploadsPage(uploads, prefixes, True, *last)
                if group is not None:
                    prefixes.append(group)
                    last = (group, None)
                else:
                    uploads.append(upload)
                    last = (upload.key, upload.upload_id)
        return UploadsPage(uploads, prefixes, False, None, None)

    def _require_upload(self, connection: Connection, bucket: str, key: str, key_bytes: bytes,
                        upload_id: str) -> Any:
        row = connection.execute(
            select(uploads_table).where(uploads_table.c.upload_id == upload_id)).first()
        if row is None or row.bucket != bucket or bytes(row.key) != key_bytes:
            self._require_bucket(connection, bucket)
            raise no_such_upload(bucket, key, upload_id)
        return row


def _stored_part(part: CompletedPart, stored: dict[int, Any], upload_id: str) -> Any:
    row = stored.get(part.part_number)
    if row is None or part.etag.strip().strip('"') != row.etag:
        raise AwsError("InvalidPart", f"Part {part.part_number} was not uploaded, or its ETag "
                       "does not match the one you listed. List the parts with ListParts and "
                       "pass their ETags unchanged.", UploadId=upload_id,
                       PartNumber=str(part.part_number))
    return row


def _part_replaced(upload_id: str) -> AwsError:
    return AwsError("InvalidPart", "A part was uploaded again while the upload was being "
                    "completed. Retry CompleteMultipartUpload.", UploadId=upload_id)


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
