"""File-like access to a stored blob, for code that needs ``seek`` (pydicom, codecs).

``BlobFile`` reads through ``storage.read_range`` in blocks, so parsing a header of a
2 GB object on S3 fetches only the blocks the parser touches — never the whole object
(django-storages' ``S3File`` would download it all). ``local_copy`` gives a real
seekable file for whole-instance work (transcoding): the file itself on the filesystem
backend, a spooled copy otherwise.
"""

from __future__ import annotations

import io
import tempfile
from typing import BinaryIO

from archive import storage

BLOCK = 256 * 1024


class BlobFile(io.RawIOBase):
    """A read-only, seekable view of one blob with a one-block cache."""

    def __init__(self, key: str, size: int | None = None, *, block: int = BLOCK) -> None:
        super().__init__()
        self.key = key
        self._size = storage.size(key) if size is None else size
        self._pos = 0
        self._block = block
        self._cache_start = -1
        self._cache = b""
        self.name = key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    def _fill(self, start: int) -> None:
        block_start = start - start % self._block
        length = min(self._block, self._size - block_start)
        self._cache = storage.read_range(self.key, block_start, length) if length > 0 else b""
        self._cache_start = block_start

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        size = max(0, min(size, self._size - self._pos))
        if size == 0:
            return b""
        if size > 4 * self._block:  # large reads go straight to storage
            data = storage.read_range(self.key, self._pos, size)
            self._pos += len(data)
            return data
        out = bytearray()
        while size > 0:
            if not (self._cache_start <= self._pos < self._cache_start + len(self._cache)):
                self._fill(self._pos)
            offset = self._pos - self._cache_start
            piece = self._cache[offset : offset + size]
            if not piece:
                break
            out += piece
            self._pos += len(piece)
            size -= len(piece)
        return bytes(out)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def local_copy(key: str, *, spool_bytes: int = 32 * 2**20) -> BinaryIO:
    """A seekable file with the blob's bytes (the caller closes it)."""
    path = storage.local_path(key)
    if path is not None:
        return open(path, "rb")
    spool = tempfile.SpooledTemporaryFile(max_size=spool_bytes)  # noqa: SIM115
    with storage.open_stream(key) as stream:
        for chunk in stream:
            spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]
