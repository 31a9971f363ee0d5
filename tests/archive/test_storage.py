"""archive.storage against both blob backends.

Every behavioural test runs twice through the ``backend`` fixture: on a
FileSystemStorage in tmp_path (always) and on django-storages' S3Storage talking to a
real SeaweedFS server (``real_services``; started once per session by the ``seaweedfs``
fixture in tests/conftest.py). No mocks: S3 traffic is inspected with botocore's own
event hooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.storage import storages
from django.core.management import call_command
from django.test import override_settings

from archive import storage
from archive.storage import BlobInfo, BlobNotFound, StorageError, StorageUnavailable
from tests.services import SeaweedS3, s3_storages_setting

MB = 2**20


def _fs_setting(root: Path) -> dict[str, Any]:
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(root), "file_permissions_mode": 0o640},
    }


@contextlib.contextmanager
def _dicom_storage(dicom: dict[str, Any]) -> Iterator[None]:
    with override_settings(STORAGES={**settings.STORAGES, "dicom": dicom}):
        yield


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.real_services)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Switch STORAGES["dicom"] to one backend; S3 tests get their own key prefix
    (``location``) in the shared bucket, so listings do not see other tests' blobs.
    """
    if request.param == "filesystem":
        dicom = _fs_setting(tmp_path / "blobs")
    else:
        server: SeaweedS3 = request.getfixturevalue("seaweedfs")
        dicom = server.storages_setting(location=f"test-{uuid.uuid4().hex[:12]}")
    with _dicom_storage(dicom):
        yield request.param


@pytest.fixture
def s3(seaweedfs: SeaweedS3) -> Iterator[SeaweedS3]:
    """S3 only: STORAGES["dicom"] on SeaweedFS under a fresh prefix."""
    with _dicom_storage(seaweedfs.storages_setting(location=f"test-{uuid.uuid4().hex[:12]}")):
        yield seaweedfs


class GeneratedStream:
    """A file-like object producing ``total`` pseudo-random bytes without holding them:
    a 1 MiB random block repeated at shifting offsets. Knows any byte range it produced.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.position = 0
        block = os.urandom(MB)
        self._double = block + block
        self.sha256 = hashlib.sha256()

    def _bytes_at(self, offset: int, length: int) -> bytes:
        # Byte i is block[(i + i // MB) % MB]: successive MiBs differ (shifted by one).
        out = bytearray()
        while length > 0:
            block_index, inner = divmod(offset, MB)
            take = min(length, MB - inner)
            shift = (inner + block_index) % MB
            out += self._double[shift : shift + take]
            offset += take
            length -= take
        return bytes(out)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.total - self.position
        n = min(n, self.total - self.position, MB)
        data = self._bytes_at(self.position, n)
        self.position += n
        self.sha256.update(data)
        return data

    def expected(self, start: int, length: int) -> bytes:
        return self._bytes_at(start, min(length, self.total - start))


def _sha256(chunks: Iterator[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    for chunk in chunks:
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


# --- both backends -------------------------------------------------------------------------


def test_round_trip_of_a_20_mb_blob(backend: str) -> None:
    data = os.urandom(20 * MB)
    key = "studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5.dcm"
    assert not storage.exists(key)

    storage.put(key, io.BytesIO(data), size=len(data))

    assert storage.exists(key)
    assert storage.size(key) == len(data)
    chunks = list(storage.open_stream(key, chunk_size=MB))
    assert all(len(chunk) <= MB for chunk in chunks)
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == hashlib.sha256(data).hexdigest()


def test_put_reads_from_the_current_position(backend: str) -> None:
    source = io.BytesIO(b"HEADER" + b"payload")
    source.seek(6)
    storage.put("k/positioned", source)
    assert b"".join(storage.open_stream("k/positioned")) == b"payload"


def test_put_of_an_empty_blob(backend: str) -> None:
    storage.put("k/empty", io.BytesIO(b""), size=0)
    assert storage.size("k/empty") == 0
    assert b"".join(storage.open_stream("k/empty")) == b""
    assert b"".join(storage.open_stream("k/empty", start=0, end=10)) == b""


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 1),  # first byte
        (3 * MB - 1, 3 * MB),  # last byte
        (3 * MB - 1, None),  # last byte, open end
        (123_457, 2 * MB + 17),  # middle, across chunk boundaries
        (0, None),  # everything
        (MB + 5, None),  # from the middle to the end
        (500, 500),  # empty range
        (3 * MB - 10, 3 * MB + 1000),  # end beyond the blob: clamped
        (3 * MB + 10, None),  # start beyond the blob: empty
    ],
)
def test_open_stream_ranges(backend: str, start: int, end: int | None) -> None:
    data = os.urandom(3 * MB)
    storage.put("k/ranges", io.BytesIO(data))

    with storage.open_stream("k/ranges", start=start, end=end, chunk_size=256 * 1024) as stream:
        chunks = list(stream)

    assert b"".join(chunks) == data[start:end]
    assert all(0 < len(chunk) <= 256 * 1024 for chunk in chunks)


def test_open_stream_small_chunks(backend: str) -> None:
    storage.put("k/small", io.BytesIO(b"0123456789"))
    assert list(storage.open_stream("k/small", start=1, end=9, chunk_size=3)) == [b"123", b"456", b"78"]


def test_open_stream_can_be_closed_early(backend: str) -> None:
    storage.put("k/early", io.BytesIO(os.urandom(4 * MB)))
    stream = storage.open_stream("k/early", chunk_size=MB)
    assert len(next(stream)) == MB
    stream.close()  # type: ignore[attr-defined]
    assert list(stream) == []
    storage.open_stream("k/early").close()  # type: ignore[attr-defined]  # closed before iterating


def test_read_range_returns_exact_bytes(backend: str) -> None:
    data = os.urandom(2 * MB + 333)
    storage.put("k/frames", io.BytesIO(data))

    assert storage.read_range("k/frames", 0, 132) == data[:132]
    assert storage.read_range("k/frames", MB - 7, 1024) == data[MB - 7 : MB - 7 + 1024]
    assert storage.read_range("k/frames", len(data) - 1, 1) == data[-1:]
    assert storage.read_range("k/frames", 0, len(data)) == data
    assert storage.read_range("k/frames", 10, 0) == b""


def test_read_range_past_the_end_is_an_error_not_a_short_read(backend: str) -> None:
    storage.put("k/short", io.BytesIO(b"0123456789"))
    with pytest.raises(StorageError) as excinfo:
        storage.read_range("k/short", 8, 5)
    assert not isinstance(excinfo.value, BlobNotFound)
    with pytest.raises(StorageError):
        storage.read_range("k/short", 20, 5)


def test_missing_blob(backend: str) -> None:
    key = "studies/none/missing.dcm"
    with pytest.raises(BlobNotFound):
        storage.open_stream(key)  # raised by the call itself, before any iteration
    with pytest.raises(BlobNotFound):
        storage.open_stream(key, start=10, end=20)
    with pytest.raises(BlobNotFound):
        storage.open_stream(key, start=10, end=10)
    with pytest.raises(BlobNotFound):
        storage.read_range(key, 0, 10)
    with pytest.raises(BlobNotFound):
        storage.size(key)
    assert storage.exists(key) is False
    storage.delete(key)
    storage.delete(key)


def test_delete(backend: str) -> None:
    storage.put("k/doomed", io.BytesIO(b"x" * 100))
    storage.delete("k/doomed")
    assert not storage.exists("k/doomed")
    storage.delete("k/doomed")  # idempotent
    assert [blob.key for blob in storage.iter_blobs()] == []


def test_iter_blobs_lists_keys_sizes_and_filters_by_prefix(backend: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    blobs = {"a/1.dcm": 10, "a/2.dcm": 20, "ab/3.dcm": 30, "b/c/4.dcm": 0, "top.dcm": 7}
    for key, length in blobs.items():
        storage.put(key, io.BytesIO(b"z" * length), size=length)

    listed = list(storage.iter_blobs())
    assert {blob.key: blob.size for blob in listed} == blobs
    for blob in listed:
        assert isinstance(blob, BlobInfo)
        assert blob.modified.utcoffset() == timedelta(0)
        assert before <= blob.modified <= datetime.now(UTC) + timedelta(seconds=5)

    def keys(prefix: str) -> set[str]:
        return {blob.key for blob in storage.iter_blobs(prefix)}

    assert keys("a/") == {"a/1.dcm", "a/2.dcm"}
    assert keys("a") == {"a/1.dcm", "a/2.dcm", "ab/3.dcm"}
    assert keys("ab/3") == {"ab/3.dcm"}
    assert keys("b/c/") == {"b/c/4.dcm"}
    assert keys("b/") == {"b/c/4.dcm"}
    assert keys("t") == {"top.dcm"}
    assert keys("zzz") == set()
    assert keys("a/1.dcm") == {"a/1.dcm"}


def test_put_overwrites(backend: str) -> None:
    storage.put("k/same", io.BytesIO(b"first version, longer"))
    storage.put("k/same", io.BytesIO(b"second"))
    assert b"".join(storage.open_stream("k/same")) == b"second"
    assert storage.size("k/same") == 6
    assert [blob.key for blob in storage.iter_blobs("k/")] == ["k/same"]


def test_put_rejects_a_stream_whose_size_differs_from_the_announced_one(backend: str) -> None:
    with pytest.raises(StorageError, match="expected 11"):
        storage.put("k/too-short", io.BytesIO(b"0123456789"), size=11)
    assert not storage.exists("k/too-short")
    with pytest.raises(StorageError, match="longer"):
        storage.put("k/too-long", io.BytesIO(b"0123456789"), size=9)
    assert not storage.exists("k/too-long")
    assert list(storage.iter_blobs()) == []


def test_errors_reading_the_callers_stream_propagate_unchanged(backend: str) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        storage.put("k/broken", Broken())  # type: ignore[arg-type]
    assert not storage.exists("k/broken")


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../b",
        "a/..",
        "a..b",
        "/abs",
        "a\\b",
        "",
        "a//b",
        "a/",
        "./a",
        "a/./b",
        "x\x00y",
        "f.archway-partial",
    ],
)
def test_invalid_keys_are_rejected(backend: str, key: str) -> None:
    with pytest.raises(ValueError):
        storage.put(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        storage.open_stream(key)
    with pytest.raises(ValueError):
        storage.read_range(key, 0, 1)
    with pytest.raises(ValueError):
        storage.size(key)
    with pytest.raises(ValueError):
        storage.exists(key)
    with pytest.raises(ValueError):
        storage.delete(key)
    with pytest.raises(ValueError):
        storage.local_path(key)


@pytest.mark.parametrize("prefix", ["../", "/a", "a\\", "a/../"])
def test_invalid_prefixes_are_rejected(backend: str, prefix: str) -> None:
    with pytest.raises(ValueError):
        list(storage.iter_blobs(prefix))


def test_ensure_bucket_is_idempotent(backend: str) -> None:
    first = storage.ensure_bucket()
    second = storage.ensure_bucket()
    assert "exists" in second
    assert first  # "created ..." or "... exists"
    out = io.StringIO()
    call_command("ensure_storage", stdout=out)
    assert "exists" in out.getvalue()


# --- filesystem only -----------------------------------------------------------------------


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "blobs"
    with _dicom_storage(_fs_setting(root)):
        yield root


def test_filesystem_put_uses_bounded_memory(fs: Path) -> None:
    source = GeneratedStream(100 * MB)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        storage.put("big/stream.dcm", source, size=source.total)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MB, f"put of a 100 MB stream peaked at {peak / MB:.1f} MB"
    path = fs / "big" / "stream.dcm"
    assert path.stat().st_size == 100 * MB
    assert _sha256(storage.open_stream("big/stream.dcm"))[0] == source.sha256.hexdigest()


def test_filesystem_put_is_atomic_fsynced_and_leaves_no_temp_files(
    fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    storage.put("a/b/c.dcm", io.BytesIO(b"durable"))
    assert len(synced) == 2  # the file, then its directory (for the rename)
    assert sorted(p.name for p in (fs / "a" / "b").iterdir()) == ["c.dcm"]
    assert (fs / "a" / "b" / "c.dcm").stat().st_mode & 0o777 == 0o640

    synced.clear()
    with override_settings(ARCHWAY_FSYNC=False):
        storage.put("a/b/d.dcm", io.BytesIO(b"fast"))
    assert synced == []
    assert (fs / "a" / "b" / "d.dcm").read_bytes() == b"fast"


def test_filesystem_failed_put_keeps_the_old_blob_and_removes_its_temp_file(fs: Path) -> None:
    storage.put("k/keep.dcm", io.BytesIO(b"old"))
    with pytest.raises(StorageError):
        storage.put("k/keep.dcm", io.BytesIO(b"new but truncated"), size=100)
    assert (fs / "k" / "keep.dcm").read_bytes() == b"old"
    assert sorted(p.name for p in (fs / "k").iterdir()) == ["keep.dcm"]


def test_filesystem_iter_blobs_skips_temp_files_of_puts_in_progress(fs: Path) -> None:
    storage.put("s/1.dcm", io.BytesIO(b"1"))
    (fs / "s" / f".2.dcm.abc123{storage.TEMP_SUFFIX}").write_bytes(b"partial")
    assert [blob.key for blob in storage.iter_blobs()] == ["s/1.dcm"]


def test_filesystem_local_path(fs: Path) -> None:
    storage.put("p/q.dcm", io.BytesIO(b"here"))
    path = storage.local_path("p/q.dcm")
    assert path == str((fs / "p" / "q.dcm").resolve())
    assert Path(path).read_bytes() == b"here"


def test_filesystem_open_stream_closes_files(fs: Path) -> None:
    storage.put("f/d.dcm", io.BytesIO(b"x" * 1000))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        storage.open_stream("f/d.dcm").close()  # type: ignore[attr-defined]  # never iterated
        assert b"".join(storage.open_stream("f/d.dcm", start=10)) == b"x" * 990  # exhausted
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_filesystem_errors_become_storage_unavailable(fs: Path) -> None:
    storage.put("blocker", io.BytesIO(b"a file where a directory is needed"))
    with pytest.raises(StorageUnavailable):
        storage.put("blocker/child.dcm", io.BytesIO(b"x"))


def test_ensure_bucket_creates_the_filesystem_root(tmp_path: Path) -> None:
    root = tmp_path / "new" / "root"
    with _dicom_storage(_fs_setting(root)):
        assert storage.ensure_bucket().startswith("created")
        assert root.is_dir()
        assert "exists" in storage.ensure_bucket()


# --- S3 only -------------------------------------------------------------------------------


@pytest.mark.real_services
def test_s3_ranged_read_transfers_only_the_range(s3: SeaweedS3) -> None:
    source = GeneratedStream(64 * MB)
    storage.put("big/64mb.dcm", source, size=source.total)  # type: ignore[arg-type]
    assert storage.size("big/64mb.dcm") == 64 * MB

    client = storages["dicom"].connection.meta.client  # the client archive.storage uses
    sent: list[dict[str, str]] = []
    received: list[tuple[int, str | None, str | None]] = []

    def before_send(request: Any, **kwargs: Any) -> None:
        sent.append({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    def after_call(http_response: Any, parsed: Any, **kwargs: Any) -> None:
        headers = http_response.headers
        received.append(
            (http_response.status_code, headers.get("Content-Length"), headers.get("Content-Range"))
        )

    client.meta.events.register("before-send.s3.GetObject", before_send)
    client.meta.events.register("after-call.s3.GetObject", after_call)
    try:
        start = 40_000_000
        assert storage.read_range("big/64mb.dcm", start, 1024) == source.expected(start, 1024)
        assert len(sent) == 1
        assert sent[0]["Range"] == f"bytes={start}-{start + 1023}"
        assert received == [(206, "1024", f"bytes {start}-{start + 1023}/{64 * MB}")]

        # open_stream: also one GetObject with a Range header, body streamed.
        sent.clear()
        received.clear()
        with storage.open_stream("big/64mb.dcm", start=MB, end=MB + 4096) as stream:
            assert b"".join(stream) == source.expected(MB, 4096)
        assert [headers["Range"] for headers in sent] == [f"bytes={MB}-{MB + 4095}"]
        assert received[0][:2] == (206, "4096")
    finally:
        client.meta.events.unregister("before-send.s3.GetObject", before_send)
        client.meta.events.unregister("after-call.s3.GetObject", after_call)

    assert _sha256(storage.open_stream("big/64mb.dcm", chunk_size=4 * MB)) == (
        source.sha256.hexdigest(),
        64 * MB,
    )


@pytest.mark.real_services
def test_s3_put_streams_with_bounded_memory(s3: SeaweedS3) -> None:
    source = GeneratedStream(100 * MB)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        storage.put("big/100mb.dcm", source, size=source.total)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # ~5 parts of 8 MiB (+ botocore's models on a first call); reading the object whole
    # would be >= 100 MB.
    assert peak < 64 * MB, f"S3 put of a 100 MB stream peaked at {peak / MB:.1f} MB"
    assert storage.size("big/100mb.dcm") == 100 * MB


@pytest.mark.real_services
def test_s3_keys_live_under_location_like_django_storages(s3: SeaweedS3) -> None:
    backend = storages["dicom"]
    storage.put("studies/1/x.dcm", io.BytesIO(b"abc"))
    head = s3.client().head_object(Bucket=s3.bucket, Key=f"{backend.location}/studies/1/x.dcm")
    assert head["ContentLength"] == 3
    assert backend.exists("studies/1/x.dcm")  # django-storages' own API agrees
    assert storage.local_path("studies/1/x.dcm") is None


@pytest.mark.real_services
def test_s3_ensure_bucket_creates_a_missing_bucket(seaweedfs: SeaweedS3) -> None:
    bucket = f"archway-new-{uuid.uuid4().hex[:8]}"
    with _dicom_storage(seaweedfs.storages_setting(bucket=bucket)):
        # SeaweedFS runs with -s3.autoCreateBucket=false, like AWS: writes need the bucket.
        with pytest.raises(StorageUnavailable, match="ensure_storage"):
            storage.put("k", io.BytesIO(b"x"))
        out = io.StringIO()
        call_command("ensure_storage", stdout=out)
        assert f"created S3 bucket {bucket!r}" in out.getvalue()
        assert "exists" in storage.ensure_bucket()
        storage.put("k", io.BytesIO(b"x"))
        assert storage.size("k") == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_s3_unreachable_raises_storage_unavailable() -> None:
    dicom = s3_storages_setting(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        bucket="archway-test",
        access_key="k",
        secret_key="s",
        max_attempts=1,
        connect_timeout=1,
    )
    with _dicom_storage(dicom):
        calls = {
            "put": lambda: storage.put("k", io.BytesIO(b"x")),
            "open_stream": lambda: storage.open_stream("k"),
            "read_range": lambda: storage.read_range("k", 0, 1),
            "size": lambda: storage.size("k"),
            "exists": lambda: storage.exists("k"),
            "delete": lambda: storage.delete("k"),
            "iter_blobs": lambda: list(storage.iter_blobs()),
            "ensure_bucket": storage.ensure_bucket,
        }
        for name, call in calls.items():
            with pytest.raises(StorageUnavailable) as excinfo:
                call()
            assert "127.0.0.1" in str(excinfo.value), name
            assert not isinstance(excinfo.value, BlobNotFound), name


def test_s3_unreachable_with_production_retries_still_maps_the_error() -> None:
    dicom = s3_storages_setting(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        bucket="archway-test",
        access_key="k",
        secret_key="s",
    )
    with _dicom_storage(dicom):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            storage.size("k")
        assert time.monotonic() - started < 30
