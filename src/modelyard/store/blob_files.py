"""The bytes of the embedded object store: immutable files with generated names.

``root/blobs/<2 hex>/<32 hex>`` never derives from a key, so no key can reach outside the
tree. A blob is written once in ``root/tmp``, renamed into place read-only, and never
changed again; a new version of an object is a new blob. That is what lets copies and
hand-offs to job sandboxes be hard links, and lets a reader keep streaming a blob that a
writer has just replaced (the open file outlives the unlink).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..api.errors import AwsError
from .spool import SpooledBody

log = logging.getLogger(__name__)

_BLOB_NAME = re.compile(r"[0-9a-f]{32}")
_CHUNK = 1024 * 1024


class BlobFiles:
    def __init__(self, root: Path) -> None:
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not _BLOB_NAME.fullmatch(name):
            raise ValueError(f"not a blob name: {name!r}")
        return self.blob_dir / name[:2] / name

    def adopt(self, temp_path: Path) -> str:
        """Move a finished file from tmp/ into blobs/ under a new name, read-only."""
        name = uuid.uuid4().hex
        target = self.path(name)
        target.parent.mkdir(exist_ok=True)
        os.chmod(temp_path, 0o444)
        os.rename(temp_path, target)
        return name

    def clone(self, source: Path) -> str:
        """A new blob with the same bytes: a hard link (blobs never change), else a copy.

        Raises FileNotFoundError if ``source`` vanished (a writer replaced it).
        """
        name = uuid.uuid4().hex
        target = self.path(name)
        target.parent.mkdir(exist_ok=True)
        try:
            os.link(source, target)
            return name
        except FileNotFoundError:
            raise
        except OSError:
            pass  # another filesystem, or links not allowed
        temp = self.temp_path()
        try:
            shutil.copyfile(source, temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return self.adopt(temp)

    def concatenate(self, sources: list[Path]) -> str:
        """One new blob holding ``sources`` end to end, copied in the kernel when it can."""
        if len(sources) == 1:
            return self.clone(sources[0])
        # Open every part first: once open, a concurrent replacement cannot take it away.
        handles = [open(path, "rb") for path in sources]
        temp = self.temp_path()
        try:
            with open(temp, "wb") as out:
                for handle in handles:
                    _append(handle, out)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        finally:
            for handle in handles:
                handle.close()
        return self.adopt(temp)

    def stage_file(self, source: Path, link: bool, md5_hex: str | None = None) -> SpooledBody:
        """A tmp/ hard link (or copy) of ``source`` with its MD5, ready to be adopted.

        ``md5_hex``, when the caller already hashed the file while writing it, saves
        reading it again (model tarballs can be gigabytes).
        """
        if link:
            temp = self.tmp_dir / f"stage-{uuid.uuid4().hex}"
            try:
                os.link(source, temp, follow_symlinks=False)
                os.chmod(temp, 0o444)  # the inode is shared: the source becomes read-only too
                return SpooledBody(temp, temp.stat().st_size, md5_hex or _md5_of(temp), None)
            except OSError:
                temp.unlink(missing_ok=True)
        return self.stage_range(source, 0, os.path.getsize(source))

    def stage_range(self, source: Path, offset: int, length: int) -> SpooledBody:
        """Copy ``length`` bytes of ``source`` from ``offset`` into tmp/, hashing them."""
        temp = self.temp_path()
        md5 = hashlib.md5()
        try:
            with open(source, "rb") as reader, open(temp, "wb") as writer:
                reader.seek(offset)
                remaining = length
                while remaining > 0:
                    data = reader.read(min(_CHUNK, remaining))
                    if not data:
                        raise AwsError("InvalidRange", "The source object is shorter than the "
                                       "requested range.", 416)
                    writer.write(data)
                    md5.update(data)
                    remaining -= len(data)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return SpooledBody(temp, length, md5.hexdigest(), None)

    def temp_path(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="blob-")
        os.close(fd)
        return Path(name)

    def discard(self, names: Iterable[str]) -> None:
        for name in names:
            try:
                self.path(name).unlink()
            except FileNotFoundError:
                pass
            except OSError:
                log.warning("could not delete blob %s; the next start will", name, exc_info=True)

    def sweep(self, referenced: set[str]) -> dict[str, int]:
        """Delete temp files and blobs no row references; only while nothing writes."""
        temp_files = 0
        for path in self.tmp_dir.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            temp_files += 1
        orphans = 0
        present: set[str] = set()
        for fan_out in self.blob_dir.iterdir():
            for path in fan_out.iterdir() if fan_out.is_dir() else ():
                if path.name in referenced:
                    present.add(path.name)
                else:
                    path.unlink(missing_ok=True)
                    orphans += 1
        return {"temp_files": temp_files, "orphan_blobs": orphans,
                "missing_blobs": len(referenced - present)}


def _md5_of(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as handle:
        while data := handle.read(_CHUNK):
            md5.update(data)
    return md5.hexdigest()


def _append(source: BinaryIO, target: BinaryIO) -> None:
    """Append all of ``source`` to ``target``, in the kernel when possible."""
    target.flush()
    try:
        while os.copy_file_range(source.fileno(), target.fileno(), 64 * _CHUNK):
            pass
        return
    except OSError:
        pass  # unsupported here (old kernel, another filesystem): copy through Python
    shutil.copyfileobj(source, target, _CHUNK)
