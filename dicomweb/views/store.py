"""STOW-RS: ``POST``/``PUT`` ``/studies`` and ``/studies/{study}`` (PS3.18 §10.5).

The body is read as a stream — one multipart part at a time, each spooled to a
temporary file (memory-bounded whatever the size) and handed to ``archive.ingest``
before the next is read. PUT is the conformance statement's upsert.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator

from django.conf import settings
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response

from archive.ingest import StoreBatch, StoreOutcome
from dicomweb import multipart
from dicomweb.media import DICOM, DICOM_JSON, DICOM_XML, MULTIPART_RELATED, MediaTypeError, parse_content_type
from dicomweb.renderers import DicomJsonRenderer, DicomXmlRenderer, PlainJsonRenderer
from dicomweb.stowmeta import Assembled, assemble
from dicomweb.views.base import DicomWebView, base_url, check_uid

logger = logging.getLogger(__name__)


class _Stream:
    """Reads the request body; counts bytes so a chunked body is held to the size limit."""

    def __init__(self, request, limit: int) -> None:
        self._request = request
        self.limit = limit
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._request.read(size)
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise multipart.BodyTooLarge(f"Request body exceeds the maximum of {self.limit} bytes")
        return data


def _spooled_body(django_request, limit: int):
    """The request body as the seekable file the ASGI handler spooled it to, or None.

    Parts are then read in place (``multipart.iter_parts(in_place=True)``) instead of
    being copied into files of their own. The size limit is checked here because such a
    body is not read through ``_Stream``.
    """
    body = getattr(django_request, "_stream", None)
    seekable = getattr(body, "seekable", None)
    if body is None or seekable is None or not seekable() or not hasattr(body, "readinto"):
        return None
    size = body.seek(0, io.SEEK_END)
    body.seek(0)
    if size > limit:
        raise multipart.BodyTooLarge(f"Request body of {size} bytes exceeds the maximum of {limit} bytes")
    return body


def _whole_body(body, size: int) -> Iterator[multipart.Part]:
    if size:
        yield multipart.Part(headers={"content-type": DICOM}, file=multipart.Window(body, 0, size), size=size)  # type: ignore[arg-type]


def _single_part(stream: _Stream) -> Iterator[multipart.Part]:
    spool = tempfile.SpooledTemporaryFile(max_size=settings.ARCHWAY_SPOOL_MEMORY_BYTES)  # noqa: SIM115
    size = 0
    try:
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
            size += len(chunk)
        if size == 0:
            return
        spool.seek(0)
        yield multipart.Part(headers={"content-type": DICOM}, file=spool, size=size)  # type: ignore[arg-type]
    finally:
        spool.close()


def request_parts(request) -> Iterator[multipart.Part]:
    """The DICOM parts of a STOW request body, one at a time; 415/400/413 as due."""
    django_request = request._request
    limit = settings.ARCHWAY_MAX_STOW_BYTES
    declared = django_request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise multipart.BodyTooLarge(f"Request body of {declared} bytes exceeds the maximum of {limit} bytes")
    try:
        content_type = parse_content_type(django_request.META.get("CONTENT_TYPE"))
    except MediaTypeError as exc:
        raise UnsupportedMediaType(
            django_request.META.get("CONTENT_TYPE", ""), detail=f"Bad Content-Type: {exc}"
        ) from exc
    stream = _Stream(django_request, limit)
    spooled = _spooled_body(django_request, limit)
    if content_type is None:
        raise UnsupportedMediaType(
            "", detail='A Content-Type is required: multipart/related; type="application/dicom".'
        )
    if content_type.mime == DICOM:
        if spooled is not None:
            return _whole_body(spooled, spooled.seek(0, io.SEEK_END))
        return _single_part(stream)
    if content_type.mime == MULTIPART_RELATED:
        part_type = content_type.params.get("type", DICOM).lower()
        if part_type not in (DICOM, DICOM_JSON, DICOM_XML):
            raise UnsupportedMediaType(
                str(content_type),
                detail=f'multipart/related with type="{part_type}" is not supported; use type='
                '"application/dicom", "application/dicom+json" or "application/dicom+xml".',
            )
        boundary = content_type.params.get("boundary")
        if not boundary:
            raise ParseError("multipart/related Content-Type has no boundary parameter.")
        return multipart.iter_parts(
            spooled if spooled is not None else stream,
            boundary,
            in_place=spooled is not None,
            spool_memory_bytes=settings.ARCHWAY_SPOOL_MEMORY_BYTES,
            spool_dir=settings.FILE_UPLOAD_TEMP_DIR,
        )
    raise UnsupportedMediaType(
        content_type.mime,
        detail=f"Content-Type {content_type.mime} is not supported; "
        'use multipart/related; type="application/dicom" or application/dicom.',
    )


def _store_part(batch: StoreBatch, part: multipart.Part) -> None:
    part_type = (part.content_type or DICOM).split(";")[0].strip().lower()
    if part_type not in (DICOM, "application/octet-stream"):
        batch.add_outcome(
            StoreOutcome(
                failure=0x0110, failure_message=f"Part Content-Type {part_type} is not application/dicom"
            )
        )
        return
    batch.add(part.file)


def _metadata_type(request) -> str | None:
    """``application/dicom+json`` or ``+xml`` for a metadata + bulk data request, else None."""
    try:
        content_type = parse_content_type(request._request.META.get("CONTENT_TYPE"))
    except MediaTypeError:
        return None
    if content_type is None or content_type.mime != MULTIPART_RELATED:
        return None
    part_type = content_type.params.get("type", "").lower()
    return part_type if part_type in (DICOM_JSON, DICOM_XML) else None


def _store_built(batch: StoreBatch, built: Assembled) -> None:
    if built.file is None:
        batch.add_outcome(
            StoreOutcome(
                instance_uid=built.instance_uid,
                sop_class_uid=built.sop_class_uid,
                failure=0xA900,
                failure_message=built.error,
            )
        )
        return
    try:
        batch.add(built.file)  # the blob is written before this returns
    finally:
        built.file.close()


class StoreView(DicomWebView):
    renderer_classes = [DicomJsonRenderer, PlainJsonRenderer, DicomXmlRenderer]
    required_permissions = {"POST": "write", "PUT": "write"}

    def post(self, request, study_uid: str | None = None):
        return self._store(request, study_uid, replace=False)

    def put(self, request, study_uid: str | None = None):
        return self._store(request, study_uid, replace=True)

    def _store(self, request, study_uid: str | None, *, replace: bool) -> Response:
        if study_uid is not None:
            check_uid(study_uid, "StudyInstanceUID")
        root = base_url(request)
        parts = request_parts(request)
        metadata_type = _metadata_type(request)
        batch = StoreBatch(expected_study_uid=study_uid, replace=replace)
        broken: multipart.MultipartError | None = None
        try:
            with batch:  # what was written is indexed also when reading the body fails
                if metadata_type is not None:
                    for built in assemble(parts, metadata_type):
                        _store_built(batch, built)
                else:
                    for part in parts:
                        _store_part(batch, part)
        except multipart.BodyTooLarge:
            raise
        except multipart.MultipartError as exc:
            broken = exc
        outcomes = batch.finish()
        if broken is not None:
            if not outcomes:
                raise broken
            # Parts already stored stay stored; the response must say exactly which.
            outcomes.append(
                StoreOutcome(
                    failure=0x0110,
                    failure_message=f"The request body is malformed after part {len(outcomes)} ({broken}); "
                    "nothing after that part was stored",
                )
            )
        if not outcomes:
            return Response(status=204)
        status, dataset = self._response(outcomes, root, study_uid)
        return Response(dataset, status=status)

    @staticmethod
    def _response(outcomes: list[StoreOutcome], root: str, study_uid: str | None) -> tuple[int, dict]:
        from dicomweb.responses import store_response

        return store_response(
            outcomes,
            study_url=lambda uid: f"{root}/studies/{uid}",
            instance_url=lambda o: (
                f"{root}/studies/{o.study_uid}/series/{o.series_uid}/instances/{o.instance_uid}"
            ),
            request_study_uid=study_uid,
        )
