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

import logging
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..api.errors import AwsError
from ..config import Settings
from .blob_files import BlobFiles
from .db import Database
from .object_tables import (
    buckets_table,
    object_info,
    object_is,
    object_row,
    objects_table,
    parts_table,
    uploads_table,
)
from .objects import (
    DEFAULT_CONTENT_TYPE,
    ENCRYPTION_METADATA,
    BucketInfo,
    ListPage,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    check_bucket_name,
    check_key,
    check_metadata,
    etag_matches,
    no_such_bucket,
    no_such_key,
    precondition_failed,
)
from .local_multipart import MultipartUploads, successor
from .spool import SpooledBody, entity_too_large

log = logging.getLogger(__name__)

T = TypeVar("T")

_LIST_BATCH = 1000
# How often to re-read a key whose blob vanished because a writer replaced it meanwhile.
_REPLACED_RETRIES = 5


class LocalObjectStore(MultipartUploads, ObjectStore):
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
                lower = successor(marker) or marker  # skip the whole group
            else:
                lower, inclusive = marker, False
        upper = successor(prefix_bytes) if prefix_bytes else None
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
                    after = successor(last_group)
                    if after is None or (upper is not None and after >= upper):
                        return page(truncated=False)
                    lower, inclusive = after, True
                else:
                    lower, inclusive = last_key, False

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
