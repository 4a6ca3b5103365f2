"""The embedded object store: the key index in SQL, the bytes in blob files.

Why SQL for keys: S3 keys are not paths (``a`` and ``a/b`` coexist), and listing by
prefix / delimiter / marker in S3's byte order is an indexed range scan
(``object_tables.py``). The bytes live in immutable, generated-name files
(``blob_files.py``).

Crash safety: bytes go to ``root/tmp`` first, are renamed into ``root/blobs``, and only
then does one transaction point the key at them; the blob it replaced is deleted after
the commit. A kill at any point leaves the old or the new object, plus perhaps a file no
row references, which ``recover()`` deletes at the next start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..api.errors import AwsError
from ..config import Settings
from .blob_files import BlobFiles
from .db import Database
from .object_tables import (
    buckets_table,
    dump_metadata,
    object_info,
    object_is,
    object_row,
    objects_table,
    part_info,
    part_is,
    parts_table,
    upload_info,
    uploads_table,
)
from .objects import (
    DEFAULT_CONTENT_TYPE,
    ENCRYPTION_METADATA,
    MIN_PART_BYTES,
    BucketInfo,
    CompletedPart,
    ListPage,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
    check_bucket_name,
    check_key,
    check_metadata,
    check_part_number,
    etag_matches,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    precondition_failed,
)
from .spool import SpooledBody, entity_too_large

log = logging.getLogger(__name__)

T = TypeVar("T")

_LIST_BATCH = 1000
# How often to re-read a key whose blob vanished because a writer replaced it meanwhile.
_REPLACED_RETRIES = 5


class LocalObjectStore(ObjectStore):
    def __init__(self, database: Database, root: Path, settings: Settings) -> None:
        self.db = database
        self.root = Path(root)
        self.settings = settings
        self.blobs = BlobFiles(self.root)

    @property
    def spool_dir(self) -> Path:
        return self.blobs.tmp_dir

    def recover(self) -> dict[str, int]:
        """Delete what a killed process left behind. Call before serving requests."""
        with self.db.read() as connection:
            referenced = set(connection.execute(select(objects_table.c.blob)).scalars())
            referenced.update(connection.execute(select(parts_table.c.blob)).scalars())
        report = self.blobs.sweep(referenced)
        if report["missing_blobs"]:
            log.error("%d stored objects or parts have lost their bytes under %s; reading "
                      "them fails with InternalError", report["missing_blobs"], self.root)
        if report["temp_files"] or report["orphan_blobs"]:
            log.info("object store recovery: removed %(temp_files)d temporary files and "
                     "%(orphan_blobs)d orphan blobs", report)
        return report

    # --- buckets ------------------------------------------------------------------------

    def create_bucket(self, name: str, *, owner: str, region: str, now: float) -> BucketInfo:
        check_bucket_name(name)
        try:
            with self.db.write() as connection:
                existing = connection.execute(
                    select(buckets_table).where(buckets_table.c.name == name)).first()
                if existing is None:
                    connection.execute(insert(buckets_table).values(
                        name=name, owner=owner, region=region, created=now))
                    return BucketInfo(name, owner, region, now)
        except IntegrityError:  # a concurrent create won (PostgreSQL)
            existing = self._bucket_row(name)
        if existing.owner == owner:
            raise AwsError("BucketAlreadyOwnedByYou", f"You already own the bucket '{name}'. "
                           "Use it, or choose another name.", 409, BucketName=name)
        raise AwsError("BucketAlreadyExists", f"The bucket name '{name}' is taken. Choose "
                       "another name.", 409, BucketName=name)

    def head_bucket(self, name: str) -> BucketInfo:
        row = self._bucket_row(name)
        return BucketInfo(row.name, row.owner, row.region, row.created)

    def list_buckets(self) -> list[BucketInfo]:
        with self.db.read() as connection:
            rows = connection.execute(select(buckets_table).order_by(buckets_table.c.name))
            return [BucketInfo(r.name, r.owner, r.region, r.created) for r in rows]

    def delete_bucket(self, name: str) -> None:
        with self.db.write() as connection:
            self._require_bucket(connection, name)
            has_objects = connection.execute(select(exists().where(
                objects_table.c.bucket == name))).scalar()
            has_uploads = connection.execute(select(exists().where(
                uploads_table.c.bucket == name))).scalar()
            if has_objects or has_uploads:
                what = "objects" if has_objects else "in-progress multipart uploads"
                raise AwsError("BucketNotEmpty", f"The bucket '{name}' still holds {what}. "
                               f"Delete them first (aws s3 rm s3://{name} --recursive; abort "
                               "uploads with AbortMultipartUpload).", 409, BucketName=name)
            connection.execute(delete(buckets_table).where(buckets_table.c.name == name))

    def _bucket_row(self, name: str) -> Any:
        with self.db.read() as connection:
            return self._require_bucket(connection, name)

    @staticmethod
    def _require_bucket(connection: Connection, name: str) -> Any:
        row = connection.execute(select(buckets_table).where(buckets_table.c.name == name)).first()
        if row is None:
            raise no_such_bucket(name)
        return row

    # --- objects ------------------------------------------------------------------------

    def put_object(
        self, bucket: str, key: str, body: SpooledBody, *, now: float,
        content_type: str = DEFAULT_CONTENT_TYPE, metadata: dict[str, str] | None = None,
        system_metadata: dict[str, str] | None = None,
        if_match: str | None = None, if_none_match: str | None = None,
    ) -> ObjectInfo:
        key_bytes = check_key(key)
        metadata = dict(metadata or {})
        check_metadata(metadata)
        if body.size > self.settings.max_object_bytes:
            raise entity_too_large(body.size, self.settings.max_object_bytes)
        info = ObjectInfo(bucket, key, body.size, body.md5_hex, now, content_type, metadata,
                          dict(system_metadata or {}))
        blob = self.blobs.adopt(body.path)
        self._commit_object(info, key_bytes, blob, if_match=if_match,
                            if_none_match=if_none_match)
        return info

    def put_file(
        self, bucket: str, key: str, source: Path, *, now: float,
        content_type: str = DEFAULT_CONTENT_TYPE, metadata: dict[str, str] | None = None,
        link: bool = True, md5_hex: str | None = None,
    ) -> ObjectInfo:
        status = os.lstat(source)
        if not stat.S_ISREG(status.st_mode):
            raise AwsError("InvalidArgument", f"{source} is not a regular file (symbolic "
                           "links and devices are not uploaded).", Key=key)
        if status.st_size > self.settings.max_object_bytes:
            raise entity_too_large(status.st_size, self.settings.max_object_bytes)
        check_key(key)
        staged = self.blobs.stage_file(Path(source), link, md5_hex)
        try:
            return self.put_object(bucket, key, staged, now=now, content_type=content_type,
                                   metadata=metadata)
        finally:
            staged.discard()

    def get_object_info(self, bucket: str, key: str) -> ObjectInfo:
        return self._lookup(bucket, key, check_key(key))[0]

    def open_object(self, bucket: str, key: str) -> ObjectReader:
        return self._with_blob(bucket, key, lambda info, path: ObjectReader(info, open(path, "rb")))

    def fetch_to_path(self, bucket: str, key: str, destination: Path, *,
                      link: bool = True) -> ObjectInfo:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)

        def place(info: ObjectInfo, blob_path: Path) -> ObjectInfo:
            if link:
                try:
                    os.link(blob_path, destination)
                    return info
                except FileNotFoundError:
                    raise
                except OSError:
                    pass  # another filesystem, or links not allowed: copy instead
            shutil.copyfile(blob_path, destination)
            return info

        return self._with_blob(bucket, key, place)

    def delete_object(self, bucket: str, key: str) -> bool:
        key_bytes = check_key(key)
        with self.db.write() as connection:
            self._require_bucket(connection, bucket)
            blob = connection.execute(
                select(objects_table.c.blob).where(object_is(bucket, key_bytes))).scalar()
            if blob is not None:
                connection.execute(delete(objects_table).where(object_is(bucket, key_bytes)))
        if blob is not None:
            self.blobs.discard([blob])
        return blob is not None

    def copy_object(
        self, source_bucket: str, source_key: str, bucket: str, key: str, *, now: float,
        replace_metadata: bool = False, content_type: str | None = None,
        metadata: dict[str, str] | None = None, system_metadata: dict[str, str] | None = None,
        encryption: dict[str, str] | None = None,
    ) -> ObjectInfo:
        key_bytes = check_key(key)
        if replace_metadata:
            check_metadata(metadata or {})
        source, blob = self._with_blob(
            source_bucket, source_key, lambda info, path: (info, self.blobs.clone(path)))
        if replace_metadata:
            content_type = content_type or DEFAULT_CONTENT_TYPE
            metadata, system_metadata = dict(metadata or {}), dict(system_metadata or {})
        else:
            content_type = source.content_type
            metadata, system_metadata = source.metadata, source.system_metadata
        if encryption is not None:
            system_metadata = {name: value for name, value in system_metadata.items()
                               if name not in ENCRYPTION_METADATA} | encryption
        info = ObjectInfo(bucket, key, source.size, source.etag, now, content_type, metadata,
                          system_metadata, source.parts_count)
        self._commit_object(info, key_bytes, blob)
        return info

    def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "",
        after: str | None = None, max_keys: int = 1000,
    ) -> ListPage:
        if max_keys <= 0:
            self._bucket_row(bucket)
            return ListPage([], [], False, None)
        prefix_bytes, delimiter_bytes = prefix.encode(), delimiter.encode()

        def group_of(key: bytes) -> bytes | None:
            if not delimiter_bytes:
                return None
            found = key.find(delimiter_bytes, len(prefix_bytes))
            return None if found < 0 else key[: found + len(delimiter_bytes)]

        lower, inclusive = prefix_bytes, True
        if after is not None and after.encode() >= lower:
            marker = after.encode()
            if group_of(marker) == marker:
                lower = _successor(marker) or marker  # skip the whole group
            else:
                lower, inclusive = marker, False
        upper = _successor(prefix_bytes) if prefix_bytes else None
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []

        def page(truncated: bool) -> ListPage:
            candidates = [contents[-1].key.encode()] if contents else []
            candidates += [prefixes[-1].encode()] if prefixes else []
            return ListPage(contents, prefixes, truncated,
                            max(candidates).decode() if candidates else None)

        with self.db.read() as connection:
            self._require_bucket(connection, bucket)
            # Read keys in batches; when a batch ends inside a common prefix, seek past it
            # instead of reading every key under it.
            while True:
                conditions = [objects_table.c.bucket == bucket,
                              objects_table.c.key >= lower if inclusive
                              else objects_table.c.key > lower]
                if upper is not None:
                    conditions.append(objects_table.c.key < upper)
                rows = connection.execute(select(objects_table).where(and_(*conditions))
                                          .order_by(objects_table.c.key).limit(_LIST_BATCH)).all()
                last_group: bytes | None = None
                for row in rows:
                    group = group_of(row.key)
                    if group is not None and group == last_group:
                        continue
                    if len(contents) + len(prefixes) >= max_keys:
                        return page(truncated=True)
                    if group is not None:
                        prefixes.append(group.decode())
                        last_group = group
                    else:
                        contents.append(object_info(row))
                if len(rows) < _LIST_BATCH:
                    return page(truncated=False)
                last_key = rows[-1].key
                if last_group is not None and last_key.startswith(last_group):
                    successor = _successor(last_group)
                    if successor is None or (upper is not None and successor >= upper):
                        return page(truncated=False)
                    lower, inclusive = successor, True
                else:
                    lower, inclusive = last_key, False

    # --- multipart uploads --------------------------------------------------------------

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
        if prefix_bytes and (upper := _successor(prefix_bytes)) is not None:
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

    # --- shared steps -------------------------------------------------------------------

    def _commit_object(
        self, info: ObjectInfo, key_bytes: bytes, blob: str, *,
        if_match: str | None = None, if_none_match: str | None = None,
        also: Callable[[Connection], list[str]] | None = None,
    ) -> None:
        """Point bucket/key at ``blob`` (already in blobs/) in one transaction, then delete
        the blobs that made obsolete. On any failure the new blob is deleted instead.

        ``also`` runs in the same transaction and returns more blobs to delete after it.
        """
        values = object_row(info, blob)
        try:
            for attempt in range(3):
                try:
                    with self.db.write() as connection:
                        self._require_bucket(connection, info.bucket)
                        current = connection.execute(
                            select(objects_table.c.blob, objects_table.c.etag)
                            .where(object_is(info.bucket, key_bytes))).first()
                        _check_write_conditions(info, current, if_match, if_none_match)
                        obsolete = also(connection) if also is not None else []
                        if current is None:
                            connection.execute(insert(objects_table).values(
                                bucket=info.bucket, key=key_bytes, **values))
                        else:
                            connection.execute(update(objects_table)
                                               .where(object_is(info.bucket, key_bytes))
                                               .values(**values))
                            obsolete.append(current.blob)
                    break
                except IntegrityError:  # a concurrent insert of the same key (PostgreSQL)
                    if attempt == 2:
                        raise
        except BaseException:
            self.blobs.discard([blob])
            raise
        self.blobs.discard(obsolete)

    def _lookup(self, bucket: str, key: str, key_bytes: bytes) -> tuple[ObjectInfo, str]:
        with self.db.read() as connection:
            row = connection.execute(
                select(objects_table).where(object_is(bucket, key_bytes))).first()
            if row is None:
                self._require_bucket(connection, bucket)
                raise no_such_key(bucket, key)
        return object_info(row), row.blob

    def _with_blob(self, bucket: str, key: str, action: Callable[[ObjectInfo, Path], T]) -> T:
        """Run ``action`` on the object's current blob, re-reading the key if a concurrent
        write replaced (and deleted) the blob between the lookup and the action."""
        key_bytes = check_key(key)
        for _ in range(_REPLACED_RETRIES):
            info, blob = self._lookup(bucket, key, key_bytes)
            try:
                return action(info, self.blobs.path(blob))
            except FileNotFoundError:
                continue
        raise AwsError("InternalError", f"The stored bytes of '{bucket}/{key}' are missing "
                       f"from {self.root}. Upload the object again.", 500,
                       Key=key, BucketName=bucket)


def _successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


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


def _check_write_conditions(info: ObjectInfo, current: Any, if_match: str | None,
                            if_none_match: str | None) -> None:
    if if_none_match is not None and current is not None \
            and etag_matches(if_none_match, current.etag):
        raise precondition_failed(info.bucket, info.key, "If-None-Match")
    if if_match is not None:
        if current is None:
            raise no_such_key(info.bucket, info.key)
        if not etag_matches(if_match, current.etag):
            raise precondition_failed(info.bucket, info.key, "If-Match")
