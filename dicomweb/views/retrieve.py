"""WADO-RS: instances, frames, metadata and bulk data (PS3.18 §10.4, §8.7).

Index rows are resolved before a response starts; bodies are async streams read from
blob storage in worker threads (``dicomweb.streams``), so memory stays bounded for
any size and no database work happens inside a body.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError

from archive import query, storage
from archive.blobfile import BlobFile, local_copy
from dicomweb import multipart
from dicomweb.media import (
    DICOM,
    DICOM_JSON,
    DICOM_XML,
    FRAME_MEDIA_TYPES,
    JSON,
    NATIVE_SYNTAXES,
    OCTET_STREAM,
    frame_media_type,
)
from dicomweb.negotiation import AS_STORED, EXPLICIT_VR_LE, AcceptDescriptor, Choice
from dicomweb.streams import async_chunks
from dicomweb.views.base import DicomWebView, base_url, check_uid

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
BIG_ENDIAN = "1.2.840.10008.1.2.2"
PIXEL_TAGS = {"7FE00010", "7FE00008", "7FE00009"}


# --- what can be produced --------------------------------------------------------------------


def _encodable() -> frozenset[str]:
    try:
        from rendering.codecs import encodable
    except ImportError:  # rendering not installed yet: native only
        return frozenset({EXPLICIT_VR_LE})
    return frozenset(encodable())


def _decodable() -> frozenset[str]:
    try:
        from rendering.codecs import decodable
    except ImportError:
        return NATIVE_SYNTAXES
    return frozenset(decodable())


def _instance_syntaxes() -> frozenset[str]:
    return _encodable() | {AS_STORED}


INSTANCE_DESCRIPTORS = (
    AcceptDescriptor(DICOM, multipart=True, default_ts=EXPLICIT_VR_LE, allowed_ts=_instance_syntaxes),
)
SINGLE_INSTANCE_DESCRIPTORS = (
    *INSTANCE_DESCRIPTORS,
    AcceptDescriptor(DICOM, multipart=False, default_ts=EXPLICIT_VR_LE, allowed_ts=_instance_syntaxes),
)
METADATA_DESCRIPTORS = (
    AcceptDescriptor(DICOM_JSON),
    AcceptDescriptor(JSON),
    AcceptDescriptor(DICOM_XML, multipart=True),
)


def _frame_descriptors() -> tuple[AcceptDescriptor, ...]:
    native = frozenset({EXPLICIT_VR_LE, AS_STORED})
    descriptors = [
        AcceptDescriptor(OCTET_STREAM, multipart=True, default_ts=EXPLICIT_VR_LE, allowed_ts=native)
    ]
    for media, syntaxes in FRAME_MEDIA_TYPES.items():
        descriptors.append(
            AcceptDescriptor(media, multipart=True, default_ts=syntaxes[0], allowed_ts=frozenset(syntaxes))
        )
    descriptors.append(
        AcceptDescriptor(OCTET_STREAM, multipart=False, default_ts=EXPLICIT_VR_LE, allowed_ts=native)
    )
    for media, syntaxes in FRAME_MEDIA_TYPES.items():
        descriptors.append(AcceptDescriptor(media, default_ts=syntaxes[0], allowed_ts=frozenset(syntaxes)))
    return tuple(descriptors)


FRAME_DESCRIPTORS = _frame_descriptors()
BULK_DESCRIPTORS = (
    AcceptDescriptor(OCTET_STREAM),
    AcceptDescriptor(OCTET_STREAM, multipart=True),
)


# --- shared helpers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """What a response body needs of one instance (no ORM objects cross into streams)."""

    study_uid: str
    series_uid: str
    instance_uid: str
    blob_key: str
    size: int
    transfer_syntax_uid: str
    frame_table: dict[str, Any]
    metadata: dict[str, Any] | None = None

    def url(self, root: str) -> str:
        return f"{root}/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.instance_uid}"


def resolve_rows(
    study_uid: str,
    series_uid: str | None,
    instance_uid: str | None,
    *,
    metadata: bool = False,
    original: bool = False,
) -> list[Row]:
    """The instances named by the path; ``original`` serves each instance's version from
    before its first attribute correction where one is kept (``msdicom-request-original``)."""
    fields = [
        "study__study_uid",
        "series__series_uid",
        "instance_uid",
        "blob_key",
        "size_bytes",
        "transfer_syntax_uid",
        "frame_table",
    ]
    if metadata:
        fields.append("metadata")
    queryset = query.instances(study_uid, series_uid, instance_uid)
    if original:
        rows = [
            Row(*values[:3], key or values[3], size if key else values[4], *values[5:])
            for *values, key, size in queryset.values_list(
                *fields, "original_blob_key", "original_size_bytes"
            )
        ]
    else:
        rows = [Row(*values) for values in queryset.values_list(*fields)]
    if not rows:
        raise NotFound(_missing(study_uid, series_uid, instance_uid))
    return rows


def _missing(study_uid: str, series_uid: str | None, instance_uid: str | None) -> str:
    if instance_uid:
        return f"Instance {instance_uid} not found in series {series_uid} of study {study_uid}."
    if series_uid:
        return f"Series {series_uid} not found in study {study_uid}."
    return f"Study {study_uid} not found."


def _check_path(study_uid: str, series_uid: str | None, instance_uid: str | None) -> None:
    check_uid(study_uid, "StudyInstanceUID")
    if series_uid is not None:
        check_uid(series_uid, "SeriesInstanceUID")
    if instance_uid is not None:
        check_uid(instance_uid, "SOPInstanceUID")


def _multipart_type(part_type: str, boundary: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def _with_syntax(media: str, transfer_syntax: str | None) -> str:
    return f"{media}; transfer-syntax={transfer_syntax}" if transfer_syntax else media


def stream_response(
    body: Iterable[bytes] | Any, content_type: str, *, status: int = 200, length: int | None = None
):
    response = StreamingHttpResponse(async_chunks(body), content_type=content_type, status=status)
    if length is not None:
        response["Content-Length"] = str(length)
    return response


# --- instances --------------------------------------------------------------------------------


class TranscodePlan:
    """Decides per instance whether the requested syntax can be produced."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._encodable = _encodable()
        self._decodable = _decodable()

    def actual(self, row: Row) -> str:
        return row.transfer_syntax_uid if self.target == AS_STORED else self.target

    def needs_transcode(self, row: Row) -> bool:
        return self.target not in (AS_STORED, row.transfer_syntax_uid)

    def problem(self, row: Row) -> str | None:
        """Why this instance cannot be returned in the target syntax (None if it can)."""
        if not self.needs_transcode(row):
            return None
        if self.target not in self._encodable:
            return f"transfer syntax {self.target} is not supported for output"
        has_pixels = row.frame_table.get("kind", "none") != "none"
        if has_pixels and row.transfer_syntax_uid not in self._decodable:
            return f"stored transfer syntax {row.transfer_syntax_uid} cannot be decoded here"
        if not has_pixels and self.target not in NATIVE_SYNTAXES | {"1.2.840.10008.1.2.1.99"}:
            return "an instance without pixel data cannot be compressed"
        return None


def instance_body(row: Row, plan: TranscodePlan) -> Iterator[bytes]:
    """The Part 10 bytes of one instance in the planned syntax (streamed from storage)."""
    if not plan.needs_transcode(row):
        with storage.open_stream(row.blob_key, chunk_size=CHUNK) as stream:
            yield from stream
        return
    from rendering.tasks import pretranscoded
    from rendering.transcode import transcode_instance

    if cached := pretranscoded(row.blob_key, plan.target):  # made by rendering.transcode_instance
        with storage.open_stream(cached, chunk_size=CHUNK) as stream:
            yield from stream
        return
    with local_copy(row.blob_key) as source:
        output = transcode_instance(source, plan.target)
    try:
        while chunk := output.read(CHUNK):
            yield chunk
    finally:
        output.close()


def transcode_now(row: Row, plan: TranscodePlan):
    from rendering.tasks import pretranscoded
    from rendering.transcode import TranscodeError, transcode_instance

    if cached := pretranscoded(row.blob_key, plan.target):
        return BlobFile(cached)
    try:
        with local_copy(row.blob_key) as source:
            return transcode_instance(source, plan.target)
    except TranscodeError as exc:
        raise NotAcceptable(f"Cannot return {row.instance_uid} in {plan.target}: {exc}") from exc


def read_closing(file) -> Iterator[bytes]:
    try:
        while chunk := file.read(CHUNK):
            yield chunk
    finally:
        file.close()


def _transcoded_parts(
    rows: list[Row], plan: TranscodePlan, root: str
) -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
    for row in rows:
        headers = {"Content-Type": _with_syntax(DICOM, plan.actual(row)), "Content-Location": row.url(root)}
        if plan.needs_transcode(row):
            # Transcode before the part header is written, so a failure skips the part cleanly.
            try:
                data = list(instance_body(row, plan))
            except Exception as exc:
                logger.warning("retrieve: skipping %s, transcoding failed: %s", row.instance_uid, exc)
                continue
            yield headers, data
        else:
            yield headers, instance_body(row, plan)


class InstancesView(DicomWebView):
    """GET study / series / instance: the instances as Part 10 (multipart or single)."""

    def accept_descriptors(self, request):
        if self.kwargs.get("instance_uid"):
            return SINGLE_INSTANCE_DESCRIPTORS
        return INSTANCE_DESCRIPTORS

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        _check_path(study_uid, series_uid, instance_uid)
        choice: Choice = request.dicom_choice
        # The MS DICOM server's header: the version kept from before an attribute update.
        original = request.headers.get("msdicom-request-original", "").strip().lower() == "true"
        rows = resolve_rows(study_uid, series_uid, instance_uid, original=original)
        plan = TranscodePlan(choice.transfer_syntax or EXPLICIT_VR_LE)
        root = base_url(request)
        problems = {row.instance_uid: problem for row in rows if (problem := plan.problem(row))}
        if problems and (instance_uid or len(problems) == len(rows)):
            raise NotAcceptable(
                "Cannot return the requested transfer syntax: " + "; ".join(sorted(set(problems.values())))
            )
        if not choice.multipart:
            (row,) = rows
            if plan.needs_transcode(row):
                # Transcode now, before the response starts: a failure must be a 406.
                spooled = transcode_now(row, plan)
                length = spooled.seek(0, 2)
                spooled.seek(0)
                body = read_closing(spooled)
            else:
                length, body = row.size, None
            response = stream_response(
                body if body is not None else (lambda: instance_body(row, plan)),
                _with_syntax(DICOM, plan.actual(row)),
                length=length,
            )
            response["Content-Location"] = row.url(root)
            return response
        included = [row for row in rows if row.instance_uid not in problems]
        boundary = multipart.new_boundary()
        response = stream_response(
            lambda: multipart.encode_parts(_transcoded_parts(included, plan, root), boundary),
            _multipart_type(DICOM, boundary),
        )
        if problems:
            response["Warning"] = (
                f'299 archway "{len(problems)} instance(s) omitted: cannot be returned in '
                f'transfer syntax {plan.target}"'
            )
        return response


# --- frames ---------------------------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    numbers = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece.isdigit() or int(piece) < 1:
            raise ParseError(
                f"Invalid frame list {text!r}: frame numbers are positive integers separated by commas."
            )
        numbers.append(int(piece))
    return numbers


def _pixel_description(row: Row):
    from rendering.transcode import PixelDescription

    return PixelDescription.from_json(row.metadata or {})


def stored_frame(row: Row, frame_index: int) -> bytes:
    """The frame's bytes as stored (native pixels or one compressed codestream)."""
    table = row.frame_table
    kind = table.get("kind")
    if kind == "native" and table.get("frame_length"):
        length = table["frame_length"]
        return storage.read_range(row.blob_key, table["offset"] + frame_index * length, length)
    if kind == "encapsulated":
        return b"".join(
            storage.read_range(row.blob_key, offset, length)
            for offset, length in table["frames"][frame_index]
        )
    return _frame_by_decoding(row, frame_index)


def _frame_by_decoding(row: Row, frame_index: int) -> bytes:
    """Frames the offset table cannot address (deflated, bit-packed): decode the instance."""
    import pydicom
    from pydicom.pixels import get_decoder  # noqa: F401  (ensures decoders are importable)

    with local_copy(row.blob_key) as source:
        ds = pydicom.dcmread(source)
        try:
            array = ds.pixel_array
        except Exception as exc:
            raise NotAcceptable(f"Frame {frame_index + 1} cannot be decoded: {exc}") from exc
    frames = int(row.frame_table.get("number_of_frames", 1) or 1)
    frame = array[frame_index] if frames > 1 else array
    return frame.astype(frame.dtype.newbyteorder("<"), copy=False).tobytes()


def frame_bytes(row: Row, frame_index: int, target: str) -> tuple[bytes, str]:
    """One frame in ``target`` (or as stored for ``*``); returns (bytes, actual syntax)."""
    stored_ts = row.transfer_syntax_uid
    table = row.frame_table
    unindexed = table.get("kind") not in ("native", "encapsulated") or (
        table.get("kind") == "native" and not table.get("frame_length")
    )
    if target == AS_STORED:
        if unindexed:
            return _frame_by_decoding(row, frame_index), EXPLICIT_VR_LE
        return stored_frame(row, frame_index), stored_ts
    if target == stored_ts and not unindexed:
        return stored_frame(row, frame_index), stored_ts
    if target == EXPLICIT_VR_LE:
        if unindexed:
            return _frame_by_decoding(row, frame_index), EXPLICIT_VR_LE
        data = stored_frame(row, frame_index)
        if stored_ts in NATIVE_SYNTAXES:
            if stored_ts == BIG_ENDIAN and (
                table.get("pixel_data_vr") == "OW"
                or (row.metadata or {}).get("00280100", {}).get("Value", [8])[0] > 8
            ):
                data = _swap16(data)
            return data, EXPLICIT_VR_LE
        from rendering.transcode import decode_frame

        return decode_frame(data, source_ts=stored_ts, pixel=_pixel_description(row)), EXPLICIT_VR_LE
    # A compressed target different from what is stored: decode, then encode losslessly.
    from rendering.transcode import encode_frame

    native, _ = frame_bytes(row, frame_index, EXPLICIT_VR_LE)
    return encode_frame(native, pixel=_pixel_description(row), target_ts=target), target


def _swap16(data: bytes) -> bytes:
    swapped = bytearray(data)
    swapped[0::2], swapped[1::2] = data[1::2], data[0::2]
    return bytes(swapped)


class FramesView(DicomWebView):
    accept_descriptors = FRAME_DESCRIPTORS

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, frames: str):
        _check_path(study_uid, series_uid, instance_uid)
        numbers = parse_frame_list(frames)
        choice: Choice = request.dicom_choice
        (row,) = resolve_rows(study_uid, series_uid, instance_uid, metadata=True)
        table = row.frame_table
        count = int(table.get("number_of_frames", 0) or 0)
        if table.get("kind", "none") == "none" or count == 0:
            raise NotFound(f"Instance {instance_uid} has no pixel data, so no frames.")
        beyond = [n for n in numbers if n > count]
        if beyond:
            raise NotFound(
                f"Frame(s) {', '.join(map(str, beyond))} out of range: the instance has {count} frame(s)."
            )
        target = choice.transfer_syntax or EXPLICIT_VR_LE
        self._check_target(row, target, choice)
        if not choice.multipart:
            if len(numbers) != 1:
                raise NotAcceptable(
                    "A single-part frame response holds one frame; ask for multipart/related."
                )
            data, actual = self._frame(row, numbers[0] - 1, target)
            return HttpResponse(data, content_type=_with_syntax(self._media_for(actual, choice), actual))
        boundary = multipart.new_boundary()
        root = base_url(request)

        def parts():
            for number in numbers:
                data, actual = self._frame(row, number - 1, target)
                headers = {
                    "Content-Type": _with_syntax(self._media_for(actual, choice), actual),
                    "Content-Location": f"{row.url(root)}/frames/{number}",
                }
                yield headers, [data]

        # Frames are read before each part is written (a failed decode ends the body early).
        return stream_response(
            lambda: multipart.encode_parts(parts(), boundary), _multipart_type(choice.media_type, boundary)
        )

    @staticmethod
    def _media_for(actual: str, choice: Choice) -> str:
        if choice.transfer_syntax == AS_STORED:
            return frame_media_type(actual) if actual not in NATIVE_SYNTAXES else OCTET_STREAM
        return choice.media_type

    @staticmethod
    def _check_target(row: Row, target: str, choice: Choice) -> None:
        if target in (AS_STORED, EXPLICIT_VR_LE, row.transfer_syntax_uid):
            stored = row.transfer_syntax_uid
            if target == EXPLICIT_VR_LE and stored not in NATIVE_SYNTAXES and stored not in _decodable():
                raise NotAcceptable(f"Frames in {stored} cannot be decoded here.")
            return
        if target not in _encodable():
            raise NotAcceptable(f"Frames cannot be encoded in transfer syntax {target} here.")

    @staticmethod
    def _frame(row: Row, index: int, target: str) -> tuple[bytes, str]:
        try:
            return frame_bytes(row, index, target)
        except (NotAcceptable, NotFound, storage.StorageError):
            raise
        except Exception as exc:
            logger.warning("frame %d of %s failed: %s", index + 1, row.instance_uid, exc)
            raise NotAcceptable(f"Frame {index + 1} cannot be returned in {target}: {exc}") from exc


# --- metadata --------------------------------------------------------------------------------

_BULK_URI = re.compile(r'("BulkDataURI":\s*")bulkdata/')


class MetadataView(DicomWebView):
    """Study / series / instance metadata from the index (no blob reads), with ETags."""

    accept_descriptors = METADATA_DESCRIPTORS

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        _check_path(study_uid, series_uid, instance_uid)
        choice: Choice = request.dicom_choice
        queryset = query.instances(study_uid, series_uid, instance_uid)
        count, newest = query.version_tag(queryset)
        if count == 0:
            raise NotFound(_missing(study_uid, series_uid, instance_uid))
        representation = "xml" if choice.media_type == DICOM_XML else "json"
        etag = f'"{count:x}-{newest:x}-{representation}"'
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            response = HttpResponse(status=304)
            response["ETag"] = etag
            return response
        root = base_url(request)
        rows = queryset.annotate(meta_text=Cast("metadata", output_field=TextField())).values_list(
            "series__series_uid", "instance_uid", "meta_text"
        )
        prefix = f"{root}/studies/{study_uid}/series/"
        texts = [
            _BULK_URI.sub(
                lambda m, s=series, i=instance: f"{m.group(1)}{prefix}{s}/instances/{i}/bulkdata/", text
            )
            for series, instance, text in rows
        ]
        if representation == "json":
            body = ("[" + ",".join(texts) + "]").encode()
            response = HttpResponse(
                body, content_type=DICOM_JSON if choice.media_type == DICOM_JSON else JSON
            )
        else:
            import json

            from dicomweb.dicomxml import json_to_xml

            boundary = multipart.new_boundary()
            documents = (({"Content-Type": DICOM_XML}, [json_to_xml(json.loads(text))]) for text in texts)
            body = b"".join(multipart.encode_parts(documents, boundary))
            response = HttpResponse(body, content_type=_multipart_type(DICOM_XML, boundary))
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return etag in candidates


# --- bulk data ------------------------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, as [start, end); None for the whole value."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # unsupported forms (multiple ranges) get the whole value, as RFC 9110 allows
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    else:
        start, end = max(0, size - int(last)), size
    if start >= size or start >= end:
        raise _Unsatisfiable(size)
    return start, end


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def _split_bulk_path(text: str) -> list[str]:
    return [piece for piece in text.strip("/").split("/") if piece]


def _walk_sequences(row: Row, pieces: list[str]) -> tuple[int, int] | bytes:
    """Resolve a path like ``00540016/0/00181072``: tag, item index, tag, …"""
    import pydicom

    from archive.reader import DEFER_SIZE

    source = BlobFile(row.blob_key, row.size)
    ds = pydicom.dcmread(source, stop_before_pixels=True, defer_size=DEFER_SIZE)
    current = ds
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if not re.fullmatch(r"[0-9A-Fa-f]{8}", piece):
            raise NotFound(f"Invalid bulk data path element {piece!r}.")
        tag = int(piece, 16)
        if tag not in current:
            raise NotFound(f"No element ({piece[:4]},{piece[4:]}) at that bulk data path.")
        if i == len(pieces) - 1:
            raw = current.get_item(tag, keep_deferred=True)
            if (
                getattr(raw, "value", None) is None
                and getattr(raw, "value_tell", None) is not None
                and (row.transfer_syntax_uid != "1.2.840.10008.1.2.1.99")
            ):
                return raw.value_tell, raw.length
            value = current[tag].value
            return value if isinstance(value, bytes | bytearray) else b""
        if i + 1 >= len(pieces) or not pieces[i + 1].isdigit():
            raise NotFound("A sequence in a bulk data path must be followed by an item number.")
        items = current[tag].value
        item = int(pieces[i + 1])
        if item >= len(items):
            raise NotFound(f"Item {item} does not exist in ({piece[:4]},{piece[4:]}).")
        current = items[item]
        i += 2
    raise NotFound("Empty bulk data path.")


class BulkDataView(DicomWebView):
    """The targets of metadata's BulkDataURIs; pixel data as its frames, with Range support."""

    accept_descriptors = BULK_DESCRIPTORS

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, path: str):
        _check_path(study_uid, series_uid, instance_uid)
        choice: Choice = request.dicom_choice
        (row,) = resolve_rows(study_uid, series_uid, instance_uid, metadata=True)
        pieces = _split_bulk_path(path)
        if not pieces:
            raise NotFound("Empty bulk data path.")
        if len(pieces) == 1 and pieces[0].upper() in PIXEL_TAGS:
            return self._pixel_data(request, row, choice)
        located = _walk_sequences(row, pieces)
        return self._bytes_response(request, row, located, choice)

    def _pixel_data(self, request, row: Row, choice: Choice):
        table = row.frame_table
        if table.get("kind", "none") == "none":
            raise NotFound("The instance has no pixel data.")
        native_single = table.get("kind") == "native" and table.get("length") is not None
        if native_single and not choice.multipart:
            return self._bytes_response(request, row, (table["offset"], table["length"]), choice)
        count = int(table.get("number_of_frames", 1) or 1)
        boundary = multipart.new_boundary()
        root = base_url(request)

        def parts():
            for index in range(count):
                data, actual = frame_bytes(row, index, AS_STORED)
                media = frame_media_type(actual) if actual not in NATIVE_SYNTAXES else OCTET_STREAM
                yield (
                    {
                        "Content-Type": _with_syntax(media, actual),
                        "Content-Location": f"{row.url(root)}/frames/{index + 1}",
                    },
                    [data],
                )

        return stream_response(
            lambda: multipart.encode_parts(parts(), boundary), _multipart_type(OCTET_STREAM, boundary)
        )

    def _bytes_response(self, request, row: Row, located: tuple[int, int] | bytes, choice: Choice):
        if isinstance(located, bytes | bytearray):
            size = len(located)
            offset = None
        else:
            offset, size = located
        try:
            wanted = _byte_range(request.headers.get("Range"), size)
        except _Unsatisfiable as exc:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{exc.size}"
            return response
        start, end = wanted if wanted else (0, size)
        status = 206 if wanted else 200
        if choice.multipart:
            boundary = multipart.new_boundary()
            if offset is None:
                body_iter: Iterable[bytes] = [bytes(located[start:end])]  # type: ignore[index]
            else:
                body_iter = storage.open_stream(row.blob_key, start=offset + start, end=offset + end)
            response = stream_response(
                lambda: multipart.encode_parts([({"Content-Type": OCTET_STREAM}, body_iter)], boundary),
                _multipart_type(OCTET_STREAM, boundary),
                status=status,
            )
        elif offset is None:
            response = HttpResponse(bytes(located[start:end]), content_type=OCTET_STREAM, status=status)  # type: ignore[index]
        else:
            response = stream_response(
                lambda: storage.open_stream(
                    row.blob_key, start=offset + start, end=offset + end, chunk_size=CHUNK
                ),
                OCTET_STREAM,
                status=status,
                length=end - start,
            )
        response["Accept-Ranges"] = "bytes"
        if wanted:
            response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return response
