"""Blob storage for DICOM instances: the only module that knows which backend runs.

Everything else in Archway stores and reads blobs through the functions below, never
through ``django.core.files.storage`` directly, because the generic Storage API is the
wrong shape for an archive on both backends:

* ``S3File.read()``/``seek()`` download the *whole* object before returning a byte, so a
  frame or a header read from a multi-gigabyte instance would pull all of it; here every
  read is one ``GetObject`` with a ``Range`` header, streamed.
* ``FileSystemStorage.save()`` neither fsyncs nor writes atomically, and renames keys
  that already exist; a PACS may acknowledge a store only once it is durable, and a
  reader must never see half a file. Here a put writes a temporary file beside the
  target, fsyncs it and ``os.replace``-s it into place.
* Backend failures arrive as a zoo of botocore/``OSError`` exceptions; here they are
  mapped to :class:`StorageUnavailable` (transient: answer 503 or retry) and
  :class:`BlobNotFound`, so callers need no backend knowledge.

The backend itself is still configured as ``settings.STORAGES["dicom"]``
(``FileSystemStorage`` or django-storages' ``S3Storage``). It is looked up through
``django.core.files.storage.storages`` on every call, never cached here, so
``override_settings(STORAGES=...)`` in tests (which resets that handler) takes effect.

Keys are relative, ``/``-separated and unique per stored version; see :func:`validate_key`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage, storages
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "StorageError",
    "StorageUnavailable",
    "delete",
    "ensure_bucket",
    "exists",
    "iter_blobs",
    "local_path",
    "open_stream",
    "put",
    "read_range",
    "size",
    "validate_key",
]

STORAGE_ALIAS = "dicom"

# Suffix of the temporary file a filesystem put writes before renaming it into place;
# iter_blobs() skips such files and keys may not end with it.
TEMP_SUFFIX = ".archway-partial"

# Size of the reads used to copy a stream into a file.
_COPY_CHUNK = 1 << 20

# S3 multipart: s3transfer keeps up to _S3_IN_MEMORY_PARTS parts of one upload in RAM
# plus about two more in flight, so memory per concurrent put is ~5 parts whatever the
# object size (measured with tracemalloc: ~42 MiB with 8 MiB parts, ~82 MiB with 16 MiB).
# 8 MiB keeps that modest for parallel STOWs while a 4 GiB body is still only 512 parts.
_S3_PART_SIZE = 8 * 2**20
_S3_MAX_PARTS = 10_000  # S3's limit: beyond ~80 GB the part size has to grow
_S3_CONCURRENCY = 3
_S3_IN_MEMORY_PARTS = 3

# ClientError codes that mean "the server is struggling, try later" even without a 5xx.
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class StorageError(Exception):
    """Base class of every error this module raises (besides ``ValueError`` for bad keys).

    Raised as such for permanent problems: wrong credentials, a stream shorter than the
    size the caller announced, a read past the end of a blob.
    """


class StorageUnavailable(StorageError):
    """The backend is down, timing out, out of space or answering 5xx.

    Transient from the caller's point of view: answer 503 (with Retry-After) or retry
    the task later; the data is not known to be missing.
    """


class BlobNotFound(StorageError):
    """No blob is stored under the key (a 404 for the caller, or an orphaned DB row)."""


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob as seen by a listing (used by consistency checks and cleanup)."""

    key: str
    size: int
    modified: datetime  # timezone-aware, UTC


# --- keys and backend selection ----------------------------------------------------------


def validate_key(key: str) -> str:
    """Return ``key`` unchanged or raise ``ValueError``.

    Keys are built by Archway from UIDs, so anything path-like is a bug or an attack:
    ``..`` anywhere, a leading ``/``, backslashes, empty segments (``a//b``), a trailing
    ``/``, control characters and the temp-file suffix are rejected instead of being
    normalised, so that one key always names one blob on both backends.
    """
    if not isinstance(key, str):
        raise ValueError(f"blob key must be a str, not {type(key).__name__}")
    _check_path_text(key, what="blob key")
    if not key:
        raise ValueError("blob key must not be empty")
    if key.endswith("/"):
        raise ValueError(f"blob key must not end with '/': {key!r}")
    if key.endswith(TEMP_SUFFIX):
        raise ValueError(f"blob key must not end with {TEMP_SUFFIX!r}: {key!r}")
    return key


def _validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key`, but empty and trailing-``/`` prefixes are fine."""
    if not isinstance(prefix, str):
        raise ValueError(f"blob prefix must be a str, not {type(prefix).__name__}")
    if prefix:
        _check_path_text(prefix.removesuffix("/"), what="blob prefix")
    return prefix


# Control characters and backslashes: one regular-expression scan instead of a Python
# loop over every character (keys are checked on every put and read).
_BAD_KEY_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")


def _check_path_text(text: str, *, what: str) -> None:
    if ".." in text:
        raise ValueError(f"{what} must not contain '..': {text!r}")
    if text.startswith("/"):
        raise ValueError(f"{what} must not start with '/': {text!r}")
    if "//" in text:
        raise ValueError(f"{what} must not contain empty path segments: {text!r}")
    if (bad := _BAD_KEY_CHARACTERS.search(text)) is not None:
        if bad.group() == "\\":
            raise ValueError(f"{what} must not contain backslashes: {text!r}")
        raise ValueError(f"{what} must not contain control characters: {text!r}")
    if text == "." or text.startswith("./") or text.endswith("/.") or "/./" in text:
        raise ValueError(f"{what} must not contain '.' segments: {text!r}")


def _backend() -> Storage:
    """The configured ``STORAGES["dicom"]`` instance, looked up fresh on every call."""
    storage = storages[STORAGE_ALIAS]
    if not isinstance(storage, FileSystemStorage | S3Storage):
        raise ImproperlyConfigured(
            f'STORAGES["{STORAGE_ALIAS}"] must be FileSystemStorage or storages.backends.s3.S3Storage, '
            f"not {type(storage).__module__}.{type(storage).__qualname__}"
        )
    return storage


# --- error mapping -------------------------------------------------------------------------


def _s3_error(exc: BaseException, key: str) -> StorageError:
    """Translate a boto3/botocore exception into this module's hierarchy."""
    if isinstance(exc, S3UploadFailedError):
        # boto3 re-raises a ClientError from a transfer as this, chaining the original.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            return _s3_error(cause, key)
        return StorageUnavailable(f"S3 upload of {key!r} failed: {exc}")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code == "NoSuchBucket":
            # A configuration problem, not a missing instance: the whole archive is
            # unusable until an operator runs `manage.py ensure_storage`.
            return StorageUnavailable(f"S3 bucket does not exist (run `manage.py ensure_storage`): {exc}")
        if code in _NOT_FOUND_CODES or status == 404:
            return BlobNotFound(key)
        if status >= 500 or code in _TRANSIENT_CODES:
            return StorageUnavailable(f"S3 error for {key!r}: {exc}")
        return StorageError(f"S3 error for {key!r}: {exc}")
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
        # ConnectionClosedError, ResponseStreamingError, ...
        return StorageUnavailable(f"S3 unreachable for {key!r}: {exc}")
    if isinstance(exc, BotoCoreError):
        return StorageError(f"S3 client error for {key!r}: {exc}")
    return StorageError(f"S3 error for {key!r}: {exc!r}")


def _fs_error(exc: OSError, key: str) -> StorageError:
    """Translate an ``OSError`` from the filesystem backend."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return BlobNotFound(key)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageUnavailable(f"blob storage is full while writing {key!r}: {exc}")
    return StorageUnavailable(f"blob storage failed for {key!r}: {exc}")


@contextlib.contextmanager
def _mapped_errors(
    key: str, source: _CountingReader | None = None, *, writing: bool = False
) -> Iterator[None]:
    """Re-raise backend exceptions as StorageError subclasses (chained, for tracebacks).

    Exceptions raised while *reading the caller's stream* in a put (``source``) are
    the client's problem, not the storage's, and propagate unchanged. When ``writing``,
    nothing is "not found" (a vanished directory, an aborted multipart upload): such
    failures are StorageUnavailable, so a store is retried rather than reported as a 404.
    """
    try:
        yield
    except (StorageError, ValueError):
        raise
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        if source is not None and source.error is not None:
            raise source.error from None
        raise _for_write(_s3_error(exc, key), writing, exc) from exc
    except OSError as exc:
        if source is not None and exc is source.error:
            raise
        raise _for_write(_fs_error(exc, key), writing, exc) from exc


def _for_write(error: StorageError, writing: bool, cause: BaseException) -> StorageError:
    if writing and isinstance(error, BlobNotFound):
        return StorageUnavailable(f"storing {error.args[0]!r} failed: {cause}")
    return error


# --- put -----------------------------------------------------------------------------------


class _CountingReader:
    """A read-only view of the caller's stream that counts bytes and enforces ``size``.

    ``read(n)`` returns exactly ``n`` bytes unless the stream has ended, looping over
    short reads: s3transfer takes a short read for end of file (measured: a stream
    returning 1 MiB per read stored 2 MiB of a 64 MiB object), and sockets, Django's
    request streams and pipes do return short reads.

    Deliberately without ``seek``: s3transfer then uses its non-seekable path, which
    reads sequentially from the current position and keeps only a bounded number of
    parts in memory (its ``read()`` without a size only comes after a short part, i.e.
    at the end of the stream).
    """

    def __init__(self, file: BinaryIO, expected: int | None, key: str) -> None:
        self._file = file
        self._expected = expected
        self._key = key
        self.count = 0
        self.error: BaseException | None = None
        self._eof = False

    def read(self, n: int | None = -1) -> bytes:
        parts: list[bytes] = []
        wanted = -1 if n is None or n < 0 else n
        got = 0
        while not self._eof and (wanted < 0 or got < wanted):
            step = _COPY_CHUNK if wanted < 0 else wanted - got
            try:
                data = self._file.read(step)
            except BaseException as exc:
                self.error = exc
                raise
            if not data:  # b"" is the end; None (non-blocking, nothing ready) is treated alike
                self._eof = True
                break
            parts.append(data)
            got += len(data)
            self.count += len(data)
            if self._expected is not None and self.count > self._expected:
                self.error = StorageError(
                    f"stream for {self._key!r} is longer than the announced size {self._expected}"
                )
                raise self.error
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the caller's stream (which has ``readinto``); 0 at the end."""
        if self._eof:
            return 0
        try:
            count = self._file.readinto(buffer) or 0  # type: ignore[attr-defined]
        except BaseException as exc:
            self.error = exc
            raise
        if not count:
            self._eof = True
            return 0
        self.count += count
        if self._expected is not None and self.count > self._expected:
            self.error = StorageError(
                f"stream for {self._key!r} is longer than the announced size {self._expected}"
            )
            raise self.error
        return count

    def check_complete(self) -> None:
        """Raise if fewer bytes arrived than the caller announced."""
        if self._expected is not None and self.count != self._expected:
            raise StorageError(
                f"stream for {self._key!r} ended after {self.count} bytes, expected {self._expected}"
            )


def put(key: str, file: BinaryIO, *, size: int | None = None, sync_directory: bool = True) -> None:
    """Store the rest of ``file`` (from its current position) under exactly ``key``.

    Streams: the file is never read into memory whole. An existing blob under the key is
    replaced (keys are unique per version, so this only happens on a retried store).
    When this returns, the blob is durable (fsynced on the filesystem backend unless
    ``settings.ARCHWAY_FSYNC`` is false; acknowledged by S3) and readers see either the
    old or the new content, never a partial one.

    ``sync_directory=False`` leaves the fsync of the blob's directory (which makes the new
    name durable on the filesystem backend) to the caller, who must call
    :func:`sync_directories` before relying on the blob — e.g. once for a whole batch of
    blobs in one series folder instead of once per blob.

    ``size``, when known, is checked against the bytes actually read (a mismatch raises
    :class:`StorageError` and stores nothing, because a truncated upload must not be
    acknowledged) and lets very large S3 uploads pick a bigger part size.
    """
    validate_key(key)
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    storage = _backend()
    reader = _CountingReader(file, size, key)
    with _mapped_errors(key, reader, writing=True):
        if isinstance(storage, S3Storage):
            _s3_put(storage, key, reader, size)
        else:
            _fs_put(storage, key, reader, sync_directory=sync_directory)


def _fs_put(
    storage: FileSystemStorage, key: str, reader: _CountingReader, *, sync_directory: bool = True
) -> None:
    path = storage.path(key)
    directory = os.path.dirname(path)
    _fs_makedirs(storage, directory)
    fsync = bool(getattr(settings, "ARCHWAY_FSYNC", True))
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            if has_readinto(reader._file):
                # One buffer per thread, reused: a fresh 1 MiB (or instance-sized) buffer
                # per read meant new pages, zero-filled, for every stored instance.
                view = _copy_buffer()
                while count := reader.readinto(view):
                    _write_all(out, view[:count])
            else:
                while chunk := reader.read(_COPY_CHUNK):
                    _write_all(out, chunk)
            reader.check_complete()
            out.flush()
            if storage.file_permissions_mode is not None:
                os.fchmod(out.fileno(), storage.file_permissions_mode)
            if fsync:
                os.fsync(out.fileno())
                _drop_cached_pages(out.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    if fsync and sync_directory:
        # The rename itself is only durable once the directory entry is on disk.
        _fsync_directory(directory)


def sync_directories(keys: Iterable[str]) -> None:
    """Make the names of blobs put with ``sync_directory=False`` durable: one fsync per folder.

    A no-op for S3 (a completed PUT is durable) and when ``ARCHWAY_FSYNC`` is off.
    """
    storage = _backend()
    if isinstance(storage, S3Storage) or not bool(getattr(settings, "ARCHWAY_FSYNC", True)):
        return
    for directory in sorted({os.path.dirname(storage.path(validate_key(key))) for key in keys}):
        with _mapped_errors(directory, writing=True):
            _fsync_directory(directory)


_buffers = threading.local()


def has_readinto(file: object) -> bool:
    """Whether ``file`` implements ``readinto`` (``io.RawIOBase`` only declares it)."""
    method = getattr(type(file), "readinto", None)
    return method is not None and method is not io.RawIOBase.readinto


def _copy_buffer() -> memoryview:
    view = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(_COPY_CHUNK))
    return view


def _write_all(out, data) -> None:
    """``out.write`` until everything is written (an unbuffered write may be partial)."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written:]


def _drop_cached_pages(fd: int) -> None:
    """Tell the kernel it need not keep a just-written (and fsynced, so clean) blob cached.

    An archive writes far more than it reads back soon; without this, every stored
    instance claims fresh page-cache memory and pushes out what is worth caching (the
    index, recently viewed studies). With it, ingest recycles the same few pages, which
    is also cheaper: on the benchmark VM, writing 525 KB into never-used pages cost
    0.84 ms of CPU against 0.15 ms into recycled ones.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _fs_makedirs(storage: FileSystemStorage, directory: str) -> None:
    """``os.makedirs`` honouring ``directory_permissions_mode`` the way Django's save() does."""
    mode = storage.directory_permissions_mode
    if mode is None:
        os.makedirs(directory, exist_ok=True)
        return
    old_umask = os.umask(0o777 & ~mode)
    try:
        os.makedirs(directory, mode, exist_ok=True)
    finally:
        os.umask(old_umask)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _s3_put(storage: S3Storage, key: str, reader: _CountingReader, size: int | None) -> None:
    part_size = _S3_PART_SIZE
    if size is not None and size > part_size * _S3_MAX_PARTS:
        part_size = -(-size // _S3_MAX_PARTS)  # ceil: stay within S3's 10,000 parts
    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=_S3_CONCURRENCY,
        use_threads=True,
        preferred_transfer_client="classic",
    )
    config.max_in_memory_upload_chunks = _S3_IN_MEMORY_PARTS
    client = _s3_client(storage)
    object_key = _s3_key(storage, key)
    client.upload_fileobj(reader, storage.bucket_name, object_key, Config=config)
    try:
        reader.check_complete()
    except StorageError:
        # The short object is already written; do not leave it looking like a blob.
        with contextlib.suppress(BotoCoreError, ClientError):
            client.delete_object(Bucket=storage.bucket_name, Key=object_key)
        raise


# --- reads ---------------------------------------------------------------------------------


class _BlobStream(Iterator[bytes]):
    """The iterator :func:`open_stream` returns.

    A class rather than a generator so that the file/HTTP response opened eagerly by
    open_stream is released by ``close()`` even if iteration never started (a
    generator's ``finally`` would not run then). ``StreamingHttpResponse`` calls
    ``close()`` when the response ends. Also a context manager.
    """

    def __init__(self, key: str, chunks: Iterator[bytes], closer: Any) -> None:
        self._key = key
        self._chunks = chunks
        self._closer = closer
        self._closed = False

    def __iter__(self) -> _BlobStream:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except (BotoCoreError, ClientError) as exc:
            # A connection dropped or timed out mid-body: transient.
            self.close()
            raise _s3_error(exc, self._key) from exc
        except OSError as exc:
            self.close()
            raise _fs_error(exc, self._key) from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._closer()

    def __enter__(self) -> _BlobStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _empty() -> Iterator[bytes]:
    return iter(())


def open_stream(
    key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
) -> Iterator[bytes]:
    """Iterate over the bytes ``[start, end)`` of a blob (``end=None``: to its end) in chunks.

    The blob is opened *now*: a missing blob raises :class:`BlobNotFound` from this call,
    before any byte is produced, so a view can still answer 404 instead of breaking a
    response mid-stream. The range is clamped to the blob like a Python slice.
    On S3 this is exactly one ``GetObject`` (with a ``Range`` header unless the whole
    blob is asked for) whose body is streamed; on the filesystem one open file. Either
    is released when the iterator is exhausted or closed.
    """
    validate_key(key)
    if start < 0:
        raise ValueError(f"start must be >= 0, not {start}")
    if end is not None and end < start:
        raise ValueError(f"end ({end}) must be >= start ({start})")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, not {chunk_size}")
    storage = _backend()
    if end is not None and end == start:
        size(key)  # existence check: an empty range of a missing blob is still a 404
        return _BlobStream(key, _empty(), lambda: None)
    with _mapped_errors(key):
        if isinstance(storage, S3Storage):
            return _s3_open_stream(storage, key, start, end, chunk_size)
        return _fs_open_stream(storage, key, start, end, chunk_size)


def _fs_open_stream(
    storage: FileSystemStorage, key: str, start: int, end: int | None, chunk_size: int
) -> _BlobStream:
    handle = open(storage.path(key), "rb")  # noqa: SIM115 - closed by the _BlobStream
    try:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", storage.path(key))
        handle.seek(start)
    except BaseException:
        handle.close()
        raise

    def chunks() -> Iterator[bytes]:
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            data = handle.read(want)
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data

    return _BlobStream(key, chunks(), handle.close)


def _s3_open_stream(
    storage: S3Storage, key: str, start: int, end: int | None, chunk_size: int
) -> _BlobStream:
    params: dict[str, Any] = {"Bucket": storage.bucket_name, "Key": _s3_key(storage, key)}
    if start > 0 or end is not None:
        params["Range"] = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
    try:
        response = _s3_client(storage).get_object(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":
            # The object exists but starts before `start`: an empty slice, like Python's.
            return _BlobStream(key, _empty(), lambda: None)
        raise
    body = response["Body"]
    return _BlobStream(key, body.iter_chunks(chunk_size), body.close)


def read_range(key: str, start: int, length: int) -> bytes:
    """Return exactly ``length`` bytes of the blob starting at ``start`` (frames, headers).

    On S3 one ranged ``GetObject``. A blob that ends before ``start + length`` raises
    :class:`StorageError`: a short read would silently corrupt a frame, and it means
    the offsets recorded at ingest do not match the blob.
    """
    validate_key(key)
    if start < 0:
        raise ValueError(f"start must be >= 0, not {start}")
    if length < 0:
        raise ValueError(f"length must be >= 0, not {length}")
    if length == 0:
        blob_size = size(key)
        if start > blob_size:
            raise StorageError(f"blob {key!r} has {blob_size} bytes, cannot read at offset {start}")
        return b""
    storage = _backend()
    with _mapped_errors(key):
        if isinstance(storage, S3Storage):
            data = _s3_read_range(storage, key, start, length)
        else:
            with open(storage.path(key), "rb") as handle:
                handle.seek(start)
                parts: list[bytes] = []
                remaining = length
                while remaining > 0 and (chunk := handle.read(remaining)):
                    parts.append(chunk)
                    remaining -= len(chunk)
                data = b"".join(parts)
    if len(data) != length:
        raise StorageError(
            f"blob {key!r} ends before byte {start + length}: read {len(data)} of {length} bytes at {start}"
        )
    return data


def _s3_read_range(storage: S3Storage, key: str, start: int, length: int) -> bytes:
    try:
        response = _s3_client(storage).get_object(
            Bucket=storage.bucket_name,
            Key=_s3_key(storage, key),
            Range=f"bytes={start}-{start + length - 1}",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":
            return b""  # exists, but shorter than start: reported as a short read
        raise
    body = response["Body"]
    try:
        return body.read()
    finally:
        body.close()


def size(key: str) -> int:
    """The blob's size in bytes (one ``HeadObject`` / ``stat``); BlobNotFound if missing."""
    validate_key(key)
    storage = _backend()
    with _mapped_errors(key):
        if isinstance(storage, S3Storage):
            head = _s3_client(storage).head_object(Bucket=storage.bucket_name, Key=_s3_key(storage, key))
            return int(head["ContentLength"])
        info = os.stat(storage.path(key))
        if not stat.S_ISREG(info.st_mode):
            raise BlobNotFound(key)
        return info.st_size


def exists(key: str) -> bool:
    """Whether a blob is stored under the key; backend failures still raise."""
    try:
        size(key)
    except BlobNotFound:
        return False
    return True


def delete(key: str) -> None:
    """Remove the blob; a missing blob is fine (deletes are retried by cleanup tasks)."""
    validate_key(key)
    storage = _backend()
    with _mapped_errors(key):
        if isinstance(storage, S3Storage):
            _s3_client(storage).delete_object(Bucket=storage.bucket_name, Key=_s3_key(storage, key))
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(storage.path(key))


def iter_blobs(prefix: str = "") -> Iterator[BlobInfo]:
    """Yield every blob whose key starts with ``prefix`` (a plain string prefix).

    For consistency checks and orphan cleanup, so it streams: S3 pages through
    ``ListObjectsV2``, the filesystem walks only the directory the prefix points into.
    Temporary files of puts in progress are not blobs and are skipped. Order: S3 lists
    keys lexicographically; the filesystem walk is sorted per directory.
    """
    _validate_prefix(prefix)
    storage = _backend()
    if isinstance(storage, S3Storage):
        yield from _s3_iter_blobs(storage, prefix)
    else:
        yield from _fs_iter_blobs(storage, prefix)


def _fs_iter_blobs(storage: FileSystemStorage, prefix: str) -> Iterator[BlobInfo]:
    root = os.path.abspath(storage.location)
    top = os.path.join(root, prefix.rpartition("/")[0]) if "/" in prefix else root
    if not os.path.isdir(top):
        return

    def walk_error(exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError):  # a directory deleted meanwhile is fine
            raise _fs_error(exc, prefix) from exc

    for dirpath, dirnames, filenames in os.walk(top, onerror=walk_error):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        # Prune directories that cannot contain a match.
        dirnames[:] = [
            d
            for d in dirnames
            if (rel_dir + d + "/").startswith(prefix) or prefix.startswith(rel_dir + d + "/")
        ]
        for name in sorted(filenames):
            key = rel_dir + name
            if name.endswith(TEMP_SUFFIX) or not key.startswith(prefix):
                continue
            try:
                info = os.stat(os.path.join(dirpath, name), follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as exc:
                raise _fs_error(exc, key) from exc
            if stat.S_ISREG(info.st_mode):
                yield BlobInfo(
                    key=key, size=info.st_size, modified=datetime.fromtimestamp(info.st_mtime, tz=UTC)
                )


def remove_stale_partials(older_than: datetime, *, dry_run: bool = False) -> int:
    """Delete temp files of filesystem puts that never finished (a crash mid-write).

    ``iter_blobs`` never lists them, so this is the only way they go. On S3 an
    interrupted upload is an incomplete multipart upload, which the bucket's lifecycle
    rule (AbortIncompleteMultipartUpload) removes; nothing to do here. Returns the count.
    """
    backend = _backend()
    if not isinstance(backend, FileSystemStorage):
        return 0
    root = os.path.abspath(backend.location)
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not name.endswith(TEMP_SUFFIX):
                continue
            path = os.path.join(dirpath, name)
            try:
                modified = datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
                if modified < older_than:
                    if not dry_run:
                        os.remove(path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _s3_iter_blobs(storage: S3Storage, prefix: str) -> Iterator[BlobInfo]:
    base = _s3_location_prefix(storage)
    paginator = _s3_client(storage).get_paginator("list_objects_v2")
    with _mapped_errors(prefix):
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=base + prefix):
            for obj in page.get("Contents", ()):
                object_key: str = obj["Key"]
                if not object_key.startswith(base) or object_key.endswith("/"):
                    continue  # directory markers made by other tools
                yield BlobInfo(
                    key=object_key[len(base) :],
                    size=int(obj["Size"]),
                    modified=obj["LastModified"].astimezone(UTC),
                )


# --- misc ----------------------------------------------------------------------------------


def local_path(key: str) -> str | None:
    """Absolute path of the blob's file on the filesystem backend (for sendfile-style
    serving), ``None`` on S3. Does not check that the file exists.
    """
    validate_key(key)
    storage = _backend()
    if isinstance(storage, S3Storage):
        return None
    return os.path.abspath(storage.path(key))


def ensure_bucket() -> str:
    """Create the bucket (S3) or root directory (filesystem) if missing; idempotent.

    django-storages never creates buckets, so a fresh deployment runs this once
    (`manage.py ensure_storage`, called by `make run`). Returns a one-line description
    of what it found or did, for the command to print.
    """
    storage = _backend()
    if isinstance(storage, S3Storage):
        return _s3_ensure_bucket(storage)
    root = os.path.abspath(storage.location)
    with _mapped_errors(root, writing=True):
        if os.path.isdir(root):
            return f"blob directory {root} exists"
        _fs_makedirs(storage, root)
    return f"created blob directory {root}"


def _s3_ensure_bucket(storage: S3Storage) -> str:
    client = _s3_client(storage)
    bucket = storage.bucket_name
    if not bucket:
        raise ImproperlyConfigured(f'STORAGES["{STORAGE_ALIAS}"] has no bucket_name (ARCHWAY_S3_BUCKET)')
    where = client.meta.endpoint_url
    with _mapped_errors(bucket, writing=True):
        try:
            client.head_bucket(Bucket=bucket)
            return f"S3 bucket {bucket!r} exists at {where}"
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404 and exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
                raise
        params: dict[str, Any] = {"Bucket": bucket}
        region = client.meta.region_name
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            client.create_bucket(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                return f"S3 bucket {bucket!r} exists at {where}"
            raise
    return f"created S3 bucket {bucket!r} at {where}"


_clients: weakref.WeakKeyDictionary[S3Storage, Any] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def _s3_client(storage: S3Storage) -> Any:
    """One boto3 client per storage backend per process, shared by all threads.

    django-storages keeps its connection in a ``threading.local``, and Django's ASGI
    handler runs every request in a fresh thread, so using ``storage.connection`` per call
    built a new boto3 session and loaded botocore's service JSON on *every request* —
    150 to 300 ms each (profiled: 94 % of a frame request on S3). Low-level boto3 clients
    are thread-safe (resources are not), so the client django-storages builds from
    ``STORAGES["dicom"]["OPTIONS"]`` (endpoint, credentials, botocore Config) is built
    once and reused.
    """
    client = _clients.get(storage)
    if client is None:
        with _clients_lock:
            client = _clients.get(storage)
            if client is None:
                client = storage.connection.meta.client
                _clients[storage] = client
    return client


def _s3_location_prefix(storage: S3Storage) -> str:
    location = clean_name(storage.location or "").strip("/")
    return f"{location}/" if location else ""


def _s3_key(storage: S3Storage, key: str) -> str:
    """The object key for a blob key, under ``location`` exactly as django-storages
    computes it, so blobs written here and through the Storage API agree.
    """
    return storage._normalize_name(clean_name(key))
