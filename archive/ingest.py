"""Ingest: validate → sanitize → write blob → index. One instance at a time.

``store()`` never raises for bad data: every outcome, good or bad, is a
``StoreOutcome`` carrying DICOM failure/warning codes, so one bad part of a STOW
request cannot fail its neighbours (pynetdicom's ``attempt`` pattern).

Ordering, and why:

1. The header is parsed and the required attributes checked before anything is
   written, so a rejected instance leaves no trace.
2. The SOP Instance UID is claimed (``archive.claims``: a lock, released by the OS or
   PostgreSQL if this process dies). A concurrent store of the same UID → 45071; one
   that arrives after the first committed → 45070. Exactly one wins: the unique
   constraint on the instance UID decides any race the claim does not see.
3. The blob is written (preamble zeroed, SHA-256 computed on the way) under a key
   unique to this version.
4. One transaction indexes Patient/Study/Series/Instance and logs the change. A
   failure here deletes the blob. A crash between 3 and 4 leaves an orphan blob, which
   ``sweep_orphans`` removes after the grace period — never an index row without its
   blob.

References: PS3.18 §10.5 (Store Transaction); conformance statement "Store".
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from archive import changefeed, fastsql, storage
from archive.claims import claim
from archive.dblock import write_lock
from archive.errors import (
    DicomError,
    InstanceExists,
    InvalidInstance,
    StorageFailure,
    StudyMismatch,
)
from archive.indexing import BlobFacts, Identifiers, IndexBatch, index_instance
from archive.metadata import instance_json
from archive.models import Instance
from archive.reader import InstanceHeader, read_header
from archive.status import Status
from archive.uids import validate_uid
from archive.validation import check_attributes

logger = logging.getLogger(__name__)

PREAMBLE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What happened to one instance of a store request."""

    instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    failure: int | None = None  # PS3.18 FailureReason, e.g. 45070
    failure_message: str = ""
    warnings: tuple[str, ...] = ()  # one message per offending attribute
    replaced: bool = False
    size: int = 0
    instance_id: int | None = field(default=None, compare=False)

    @property
    def stored(self) -> bool:
        return self.failure is None

    @property
    def warning_reason(self) -> int | None:
        return Status.DATASET_DOES_NOT_MATCH_SOP_CLASS if self.warnings else None


def _clean(value: object) -> str:
    return str(value if value is not None else "").strip("\x00 ")


_REQUIRED_UIDS = (
    ("StudyInstanceUID", "0020000D"),
    ("SeriesInstanceUID", "0020000E"),
    ("SOPInstanceUID", "00080018"),
    ("SOPClassUID", "00080016"),
)


def _text(meta: dict, key: str, header: InstanceHeader) -> str:
    """One attribute's value as text, from the DICOM JSON when it has it.

    Elements sent with VR UN (explicit VR, unknown to the sender) are bulk data in the
    JSON; pydicom still knows the VR of a public tag, so those are converted by it.
    """
    element = meta[key]
    if "Value" in element or "BulkDataURI" not in element:
        values = element.get("Value") or [""]
        return "\\".join(str(v) if v is not None else "" for v in values).strip("\x00 ")
    try:
        return _clean(header.dataset[int(key, 16)].value)
    except Exception:  # a value pydicom cannot read either
        return ""


def _identifiers(meta: dict, header: InstanceHeader) -> Identifiers:
    """The five required attributes, or InvalidInstance naming every one that is wrong.

    Read from the instance's DICOM JSON (``archive.metadata``), which has already
    decoded every value once: converting them again through pydicom cost more than
    the checks themselves.
    """
    problems: list[str] = []
    found: dict[str, str] = {}
    for keyword, key in _REQUIRED_UIDS:
        label = f"({key[:4]},{key[4:]}) {keyword}"
        if key not in meta:
            problems.append(f"{label} is missing")
            continue
        value = _text(meta, key, header)
        ok, reason = validate_uid(value)
        if not ok:
            problems.append(f"{label} is invalid: {reason}")
        found[keyword] = value
    if "00100020" not in meta:
        problems.append("(0010,0020) PatientID is missing (it may be empty, but must be present)")
    else:
        patient_id = _text(meta, "00100020", header)
        if len(patient_id) > 64:
            problems.append(f"(0010,0020) PatientID is {len(patient_id)} characters long (LO allows 64)")
        elif "\\" in patient_id or any(ord(ch) < 0x20 and ch != "\x1b" for ch in patient_id):
            problems.append(
                "(0010,0020) PatientID contains a backslash or control character (not allowed in LO)"
            )
        found["PatientID"] = patient_id
    if problems:
        raise InvalidInstance("; ".join(problems))
    return Identifiers(
        study_uid=found["StudyInstanceUID"],
        series_uid=found["SeriesInstanceUID"],
        instance_uid=found["SOPInstanceUID"],
        sop_class_uid=found["SOPClassUID"],
        patient_id=found["PatientID"],
    )


class _PrefixedFile(io.RawIOBase):
    """``prefix`` followed by ``fp``'s bytes, as one seekable file (no copying)."""

    def __init__(self, prefix: bytes, fp: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._fp = fp
        fp.seek(0, io.SEEK_END)
        self._size = len(prefix) + fp.tell()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        wanted = len(buffer)
        out = b""
        if self._pos < len(self._prefix):
            out = self._prefix[self._pos : self._pos + wanted]
        rest = wanted - len(out)
        if rest > 0:
            self._fp.seek(max(0, self._pos + len(out) - len(self._prefix)))
            out += self._fp.read(rest)
        buffer[: len(out)] = out
        self._pos += len(out)
        return len(out)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        buffer = bytearray(max(0, min(size, self._size - self._pos)))
        count = self.readinto(buffer)
        return bytes(buffer[:count])


def as_part10(fp: BinaryIO) -> BinaryIO:
    """The stream as a Part 10 file; a File Meta group without preamble gets one.

    Some writers (pydicom's ``dcmwrite`` without ``enforce_file_format``, which
    dicomweb-client uses) emit the File Meta Information without the 128-byte preamble
    and ``DICM`` prefix. Lenient on input, strict on output: such a stream is archived
    as proper Part 10 (zero preamble + ``DICM`` + the bytes as received).
    """
    fp.seek(0)
    head = fp.read(132)
    fp.seek(0)
    if head[128:132] != b"DICM" and head[:2] == b"\x02\x00" and head[3:4] == b"\x00":
        return _PrefixedFile(b"\x00" * PREAMBLE_LENGTH + b"DICM", fp)  # type: ignore[return-value]
    return fp


class _SanitizedReader:
    """Reads a Part 10 stream with its preamble zeroed, hashing what it hands out.

    The preamble may carry anything (a TIFF header, an executable: the "dual personality"
    attack), so it is never archived (conformance statement, "Preamble Sanitization").
    """

    def __init__(self, fp: BinaryIO) -> None:
        fp.seek(0, io.SEEK_END)
        self._size = fp.tell()
        fp.seek(0)
        self._fp = fp
        self._position = 0
        self.sha256 = hashlib.sha256()

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` (the storage's reusable copy buffer: no allocation per read)."""
        view = memoryview(buffer).cast("B")
        if storage.has_readinto(self._fp):
            count = self._fp.readinto(view) or 0  # type: ignore[attr-defined]
        else:
            chunk = self._fp.read(len(view))
            count = len(chunk)
            view[:count] = chunk
        if self._position < PREAMBLE_LENGTH and count:
            zeroed = min(PREAMBLE_LENGTH - self._position, count)
            view[:zeroed] = bytes(zeroed)
        self._position += count
        self.sha256.update(view[:count])
        return count

    def read(self, size: int = -1) -> bytes | bytearray:
        if self._position < PREAMBLE_LENGTH and size is not None and size > 0:
            # Zero the preamble in place, in the one buffer the read fills: slicing and
            # concatenating copied the whole first chunk (an entire CT instance) twice.
            data: bytes | bytearray = bytearray(min(size, max(0, self._size - self._position)))
            count = self._fp.readinto(data) if hasattr(self._fp, "readinto") else None
            if count is None:
                chunk = self._fp.read(len(data))
                count = len(chunk)
                data[:count] = chunk
            del data[count:]
            zeroed = min(PREAMBLE_LENGTH - self._position, count)
            data[:zeroed] = bytes(zeroed)
        else:
            data = self._fp.read(size)
            if self._position < PREAMBLE_LENGTH and data:
                zeroed = min(PREAMBLE_LENGTH - self._position, len(data))
                data = b"\x00" * zeroed + data[zeroed:]
        self._position += len(data)
        self.sha256.update(data)
        return data


def blob_key(ids: Identifiers, version: int) -> str:
    """Blob key of one version of an instance: unique, readable, grouped by study.

    One folder per series (not per instance): on the filesystem backend a folder per
    instance cost a ``mkdir`` and a directory fsync on every store.

    >>> blob_key(Identifiers("1.2", "1.2.3", "1.2.3.4", "1.2.840.10008.5.1.4.1.1.2", ""), 255)
    'dicom/1.2/1.2.3/1.2.3.4.ff.dcm'
    """
    return f"dicom/{ids.study_uid}/{ids.series_uid}/{ids.instance_uid}.{version:x}.dcm"


def _failure(
    error: DicomError, ids: Identifiers | None = None, header: InstanceHeader | None = None
) -> StoreOutcome:
    sop_class = sop_instance = None
    if ids is not None:
        sop_class, sop_instance = ids.sop_class_uid, ids.instance_uid
    elif header is not None:
        sop_class = _clean(header.dataset.get("SOPClassUID", "")) or None
        sop_instance = _clean(header.dataset.get("SOPInstanceUID", "")) or None
    return StoreOutcome(
        instance_uid=sop_instance,
        sop_class_uid=sop_class,
        study_uid=ids.study_uid if ids else None,
        series_uid=ids.series_uid if ids else None,
        failure=int(error.status),
        failure_message=error.message,
    )


def store(
    file: BinaryIO,
    *,
    expected_study_uid: str | None = None,
    replace: bool = False,
    keep_original: bool = False,
) -> StoreOutcome:
    """Archive one Part 10 instance and index it; bad data returns a failure, never raises.

    ``replace=True`` is PUT (upsert): an existing instance with the same SOP Instance
    UID is replaced and its old blob removed after commit. ``keep_original=True`` (an
    attribute correction, ``archive.corrections``) keeps the replaced instance's first
    version instead, as ``Instance.original_blob_key``.
    """
    batch = StoreBatch(expected_study_uid=expected_study_uid, replace=replace, keep_original=keep_original)
    batch.add(file)
    return batch.finish()[0]


@dataclass(slots=True)
class _Written:
    """A claimed instance whose blob is written, waiting for its index transaction."""

    slot: int
    header: InstanceHeader
    meta: dict
    ids: Identifiers
    blob: BlobFacts
    warnings: tuple[str, ...]
    started: float


def _write_blob(file: BinaryIO, key: str, size: int, version: int) -> BlobFacts:
    """Write one blob (preamble zeroed, SHA-256 on the way, fsynced; its folder not yet)."""
    reader = _SanitizedReader(file)
    try:
        storage.put(key, reader, size=size, sync_directory=False)  # type: ignore[arg-type]
    except storage.StorageError as exc:
        raise StorageFailure(f"Blob storage failed: {exc}") from exc
    return BlobFacts(key=key, size=size, sha256=reader.sha256.hexdigest(), version=version)


class StoreBatch:
    """Store the instances of one request: each blob as its part arrives, the index in batches.

    Every part is validated and its blob written (and fsynced) before the next part is
    read, so memory stays bounded whatever the request size. Indexing waits: the
    instances written so far are indexed together, in one transaction, when
    ``MAX_PENDING`` have accumulated, when the same SOP Instance UID comes again, and
    at ``finish()``. One transaction per instance was a third of a store's index cost
    (begin, commit, the SQLite write lock), and every instance re-read and re-updated
    the same study and series rows (``archive.indexing.IndexBatch``). The folders of the
    batch's blobs are fsynced once each before the index commits (a series' instances
    share one), instead of once per blob.

    Failures stay per instance: a bad part gets its own failure and the others are
    stored. If the batch transaction fails (a unique-constraint race, a database
    error), nothing of it is committed and each of its instances is indexed again in a
    transaction of its own, so exactly the failing one fails (and its blob is deleted).
    Claims (45071) are held from before the blob write until the instance's index
    commit. PUT (``replace``) and corrections index every instance on its own.
    """

    MAX_PENDING = 50

    def __init__(
        self, *, expected_study_uid: str | None = None, replace: bool = False, keep_original: bool = False
    ) -> None:
        self.expected_study_uid = expected_study_uid
        self.replace = replace
        self.keep_original = keep_original
        self._outcomes: list[StoreOutcome | None] = []
        self._pending: list[_Written] = []
        self._claims = contextlib.ExitStack()

    def add_outcome(self, outcome: StoreOutcome) -> None:
        """Record the result of a part that was decided without storing (e.g. a wrong type)."""
        self._outcomes.append(outcome)

    def add(self, file: BinaryIO) -> None:
        """Validate one instance and write its blob; its index row follows in a batch."""
        started = time.perf_counter()
        slot = len(self._outcomes)
        self._outcomes.append(None)
        header: InstanceHeader | None = None
        ids: Identifiers | None = None
        try:
            file = as_part10(file)
            header = read_header(file)
            meta = instance_json(header)
            ids = _identifiers(meta, header)
            if self.expected_study_uid is not None and ids.study_uid != self.expected_study_uid:
                raise StudyMismatch(
                    f"StudyInstanceUID {ids.study_uid} does not match the study in the request URL "
                    f"({self.expected_study_uid})"
                )
            warnings = tuple(problem.message for problem in check_attributes(header.dataset))
            if any(written.ids.instance_uid == ids.instance_uid for written in self._pending):
                self.flush()  # the same instance twice: the second sees the first stored
            self._pending.append(self._claim_and_write(slot, file, header, meta, ids, warnings, started))
        except DicomError as error:
            self._done(slot, _failure(error, ids, header), started)
        except Exception:  # a bug must cost one instance, not the request
            logger.exception(
                "store failed unexpectedly for %s", ids.instance_uid if ids else "an unreadable part"
            )
            error = DicomError("Internal processing failure; see the server log")
            self._done(slot, _failure(error, ids, header), started)
        if self._pending and (self.replace or self.keep_original or len(self._pending) >= self.MAX_PENDING):
            self.flush()

    def _claim_and_write(
        self,
        slot: int,
        file: BinaryIO,
        header: InstanceHeader,
        meta: dict,
        ids: Identifiers,
        warnings: tuple[str, ...],
        started: float,
    ) -> _Written:
        """Claim the instance (held until its index commits), check it is new, write its blob.

        Written here, in the request thread. (Writing in a pool thread while the request
        parses the next part was tried: 8-15 % less wall time for one client sending
        10-instance requests, but 6-20 % more CPU per instance in thread hand-overs, which
        costs throughput as soon as several clients keep both cores busy.)
        """
        held = contextlib.ExitStack()
        held.enter_context(claim(ids.instance_uid))  # InstanceInFlight (45071) if taken
        with held:
            try:
                if not self.replace and fastsql.exists(Instance, instance_uid=ids.instance_uid):
                    raise InstanceExists(f"Instance {ids.instance_uid} is already stored")
            except DatabaseError as exc:
                raise StorageFailure(f"The index is unavailable: {exc}") from exc
            version = time.time_ns()
            key = blob_key(ids, version)
            blob = _write_blob(file, key, header.file_size, version)
            self._claims.enter_context(held.pop_all())  # success: keep the claim until flush()
        return _Written(slot, header, meta, ids, blob, warnings, started)

    def flush(self) -> None:
        """Index every written instance; then release their claims."""
        pending, self._pending = self._pending, []
        try:
            try:
                storage.sync_directories(written.blob.key for written in pending)
            except storage.StorageError as exc:
                # The names of these blobs may not survive a crash: store none of them.
                for written in pending:
                    _delete_quietly(written.blob.key)
                    failure = StorageFailure(f"Blob storage failed: {exc}")
                    self._done(written.slot, _failure(failure, written.ids, written.header), written.started)
                return
            if len(pending) > 1:
                try:
                    instances = _index_many(pending)
                except (DatabaseError, DicomError):
                    logger.warning(
                        "indexing %d instances together failed; indexing them one by one",
                        len(pending),
                        exc_info=True,
                    )
                else:
                    for written, instance in zip(pending, instances, strict=True):
                        self._done(written.slot, _stored(written, instance, None), written.started)
                    return
            for written in pending:
                self._done(written.slot, self._index_one(written), written.started)
        finally:
            self._claims.close()
            self._claims = contextlib.ExitStack()

    def _index_one(self, written: _Written) -> StoreOutcome:
        try:
            instance, replaced = _index(
                written.header, written.meta, written.ids, written.blob, self.replace, self.keep_original
            )
        except DicomError as error:
            _delete_quietly(written.blob.key)
            return _failure(error, written.ids, written.header)
        except Exception:
            _delete_quietly(written.blob.key)
            logger.exception("indexing %s failed unexpectedly", written.ids.instance_uid)
            error = DicomError("Internal processing failure; see the server log")
            return _failure(error, written.ids, written.header)
        return _stored(written, instance, replaced)

    def _done(self, slot: int, outcome: StoreOutcome, started: float) -> None:
        self._outcomes[slot] = outcome
        logger.info(
            "store %s instance=%s study=%s size=%d failure=%s warnings=%d %.1fms",
            "replaced" if outcome.replaced else ("ok" if outcome.stored else "failed"),
            outcome.instance_uid,
            outcome.study_uid,
            outcome.size,
            outcome.failure,
            len(outcome.warnings),
            (time.perf_counter() - started) * 1000,
        )

    def finish(self) -> list[StoreOutcome]:
        """Index what is still pending; the outcome of every part, in request order."""
        self.flush()
        return [outcome for outcome in self._outcomes if outcome is not None]

    def __enter__(self) -> StoreBatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Also when reading the request fails half-way (a body that breaks off): what
        # was written is indexed, so the response can say exactly what is stored.
        self.flush()


def _stored(written: _Written, instance: Instance, replaced: Instance | None) -> StoreOutcome:
    ids = written.ids
    return StoreOutcome(
        instance_uid=ids.instance_uid,
        sop_class_uid=ids.sop_class_uid,
        study_uid=ids.study_uid,
        series_uid=ids.series_uid,
        warnings=written.warnings,
        replaced=replaced is not None,
        size=written.header.file_size,
        instance_id=instance.pk,
    )


def _index_many(pending: list[_Written]) -> list[Instance]:
    """Index several new instances in one transaction (``IndexBatch``); raise if any fails."""
    try:
        with write_lock(), transaction.atomic():
            batch = IndexBatch()
            instances = []
            for written in pending:
                instance, _ = index_instance(
                    written.header, written.meta, written.ids, written.blob, replace=False, batch=batch
                )
                changefeed.record_store(written.ids, written.blob.version, replaced=False)
                instances.append(instance)
            batch.apply(timezone.now())
    except IntegrityError as exc:
        raise InstanceExists(f"An instance of the batch is already stored: {exc}") from exc
    return instances


def _index(
    header: InstanceHeader,
    meta: dict,
    ids: Identifiers,
    blob: BlobFacts,
    replace: bool,
    keep_original: bool,
) -> tuple[Instance, Instance | None]:
    """Index a written blob in one transaction; the caller deletes the blob if this raises."""
    try:
        with write_lock(), transaction.atomic():
            instance, replaced = index_instance(header, meta, ids, blob, replace=replace)
            changefeed.record_store(ids, blob.version, replaced=replaced is not None)
            if replaced is not None:
                obsolete = [replaced.blob_key]
                if keep_original:
                    # The first version survives every later correction; versions in
                    # between are not kept (as the MS DICOM server's bulk update).
                    original_key = replaced.original_blob_key or replaced.blob_key
                    original_size = (
                        replaced.original_size_bytes if replaced.original_blob_key else replaced.size_bytes
                    )
                    Instance.objects.filter(pk=instance.pk).update(
                        original_blob_key=original_key, original_size_bytes=original_size
                    )
                    obsolete = [] if original_key == replaced.blob_key else [replaced.blob_key]
                elif replaced.original_blob_key:
                    obsolete.append(replaced.original_blob_key)
                for old_key in obsolete:
                    transaction.on_commit(partial(_delete_quietly, old_key))
    except IntegrityError as exc:
        raise InstanceExists(f"Instance {ids.instance_uid} is already stored") from exc
    except DatabaseError as exc:
        raise StorageFailure(f"The index is unavailable: {exc}") from exc
    return instance, replaced


def _delete_quietly(key: str) -> None:
    """Delete a blob; a failure only leaves an orphan that sweep_orphans removes later."""
    try:
        storage.delete(key)
    except storage.StorageError:
        logger.warning("could not delete blob %s; sweep_orphans will", key, exc_info=True)
