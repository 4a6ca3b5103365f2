"""Request bodies written to a temporary file before anything is stored.

An upload is spooled to ``tmp_dir`` (on the object store's filesystem, so the store can
later rename it into place) while its digests are computed in the same pass. Only when
the whole body has arrived and every digest the client claimed matches does the store
see it; a bad or truncated upload never replaces what is stored.

Disk writes and hashing run in worker threads in blocks of ``_BLOCK`` bytes, so the event
loop only moves bytes between the socket and those blocks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.errors import AwsError

_BLOCK = 1024 * 1024
# A chunk header is "<hex size>;chunk-signature=<64 hex>\r\n"; anything much longer is junk.
_MAX_CHUNK_HEADER = 4096
_MAX_TRAILER_BYTES = 16 * 1024

# Flexible checksums we can compute with the standard library (x-amz-checksum-<name>).
CHECKSUM_ALGORITHMS = ("crc32", "sha1", "sha256")


@dataclass
class SpooledBody:
    """A request body already on disk in the store's temporary directory.

    ``checksums`` holds base64 digests for the flexible-checksum algorithms that were
    asked for; ``trailers`` the trailing headers of an aws-chunked body (lower-case names).
    """

    path: Path
    size: int
    md5_hex: str
    sha256_hex: str | None
    checksums: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove the file unless a store has already taken it."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _Crc32:
    """zlib.crc32 behind hashlib's interface; S3 sends the big-endian digest in base64."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: Any) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def _new_checksum(name: str) -> Any:
    return _Crc32() if name == "crc32" else hashlib.new(name)


class _Writer:
    """The blocking half of spooling: one temp file plus its running digests."""

    def __init__(self, tmp_dir: Path, sha256: bool, checksums: Iterable[str]) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".part")
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.size = 0
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if sha256 else None
        self.checksums = {name: _new_checksum(name) for name in set(checksums)}

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        self.file.write(view)
        self.md5.update(view)
        if self.sha256 is not None:
            self.sha256.update(view)
        for checksum in self.checksums.values():
            checksum.update(view)
        self.size += len(data)

    def finish(self, trailers: dict[str, str]) -> SpooledBody:
        self.file.close()
        return SpooledBody(
            path=self.path,
            size=self.size,
            md5_hex=self.md5.hexdigest(),
            sha256_hex=self.sha256.hexdigest() if self.sha256 is not None else None,
            checksums={
                name: base64.b64encode(checksum.digest()).decode()
                for name, checksum in self.checksums.items()
            },
            trailers=trailers,
        )

    def abandon(self) -> None:
        self.file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


async def spool_stream(
    chunks: AsyncIterator[bytes],
    tmp_dir: Path,
    limit: int,
    *,
    aws_chunked: bool = False,
    decoded_length: int | None = None,
    sha256: bool = True,
    checksums: Iterable[str] = (),
) -> SpooledBody:
    """Write ``chunks`` to a new file in ``tmp_dir``; raise EntityTooLarge past ``limit``.

    ``aws_chunked`` decodes S3's chunked upload framing (Content-Encoding: aws-chunked);
    ``decoded_length`` is then the x-amz-decoded-content-length the client announced.
    Chunk signatures are not checked here: the framing is removed and the payload hashed.
    """
    if decoded_length is not None and decoded_length > limit:
        raise entity_too_large(decoded_length, limit)
    writer = await asyncio.to_thread(_Writer, tmp_dir, sha256, checksums)
    decoder = AwsChunkedDecoder() if aws_chunked else None
    pending: list[bytes] = []
    pending_size = 0
    try:
        async for chunk in chunks:
            data = decoder.feed(chunk) if decoder is not None else chunk
            if not data:
                continue
            pending.append(data)
            pending_size += len(data)
            if writer.size + pending_size > limit:
                raise entity_too_large(writer.size + pending_size, limit)
            if pending_size >= _BLOCK:
                await asyncio.to_thread(writer.write, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            await asyncio.to_thread(writer.write, b"".join(pending))
        trailers: dict[str, str] = {}
        if decoder is not None:
            trailers = decoder.finish()
            if decoded_length is not None and writer.size != decoded_length:
                raise AwsError(
                    "IncompleteBody",
                    f"The aws-chunked body decoded to {writer.size} bytes but "
                    f"x-amz-decoded-content-length announced {decoded_length}. "
                    "Resend the complete request.",
                )
        return await asyncio.to_thread(writer.finish, trailers)
    except BaseException:
        await asyncio.to_thread(writer.abandon)
        raise


def entity_too_large(size: int, limit: int) -> AwsError:
    return AwsError(
        "EntityTooLarge",
        f"Your proposed upload of {size} bytes exceeds the maximum allowed size of {limit} "
        "bytes for one request. Upload larger objects with multipart upload (boto3's "
        "upload_file does this automatically), or raise the server's max_object_bytes.",
        ProposedSize=str(size),
        MaxSizeAllowed=str(limit),
    )


class AwsChunkedDecoder:
    """Incremental decoder for ``Content-Encoding: aws-chunked`` bodies.

    Each chunk is ``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n``; a zero-size chunk
    ends the data and may be followed by trailer lines (``name:value\\r\\n``) and ``\\r\\n``.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._remaining = 0  # data bytes still expected in the current chunk
        self._state = "header"  # header -> data -> data-end -> ... -> trailer -> done
        self._trailers: dict[str, str] = {}
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while self._step(out):
            pass
        return bytes(out)

    def finish(self) -> dict[str, str]:
        if self._state != "done":
            raise _framing_error("the body ended before the final zero-length chunk")
        return self._trailers

    def _step(self, out: bytearray) -> bool:
        """Consume one piece of framing; False when more input is needed."""
        buffer = self._buffer
        if self._state == "data":
            if not buffer:
                return False
            take = min(self._remaining, len(buffer))
            out += buffer[:take]
            del buffer[:take]
            self._remaining -= take
            if self._remaining == 0:
                self._state = "data-end"
            return True
        if self._state == "done":
            if buffer.strip():
                raise _framing_error("unexpected bytes after the final chunk")
            buffer.clear()
            return False
        line = self._take_line()
        if line is None:
            return False
        if self._state == "data-end":
            if line:
                raise _framing_error("a chunk's data is longer than its declared size")
            self._state = "header"
        elif self._state == "header":
            self._start_chunk(line)
        elif self._state == "trailer":
            self._add_trailer(line)
        return True

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            limit = _MAX_TRAILER_BYTES if self._state == "trailer" else _MAX_CHUNK_HEADER
            if len(self._buffer) > limit:
                raise _framing_error("a chunk header line is too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _framing_error(f"bad chunk size {size_text[:20]!r}") from None
        if size < 0:
            raise _framing_error("negative chunk size")
        if size == 0:
            self._state = "trailer"
        else:
            self._remaining = size
            self._state = "data"

    def _add_trailer(self, line: bytes) -> None:
        if not line:
            self._state = "done"
            return
        self._trailer_bytes += len(line)
        if self._trailer_bytes > _MAX_TRAILER_BYTES:
            raise _framing_error("the trailing headers are too long")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _framing_error(f"bad trailer line {line[:40]!r}")
        self._trailers[name.strip().lower()] = value.strip()


def _framing_error(detail: str) -> AwsError:
    return AwsError(
        "IncompleteBody",
        f"The aws-chunked request body is malformed: {detail}. Resend the request; if it "
        "keeps failing, turn off chunked uploads in the client.",
    )
