"""STOW of metadata + bulk data (PS3.18 §10.5.1.2.2): build Part 10 instances to ingest.

The request is ``multipart/related; type="application/dicom+json"`` (or ``+xml``): the
metadata part(s) come first, then bulk data parts — ``application/octet-stream``,
compressed pixel data such as ``image/jpeg`` or ``image/jp2``, ``application/pdf`` for an
encapsulated document — each matched to a ``BulkDataURI`` by its ``Content-Location``.
Archway assembles a valid Part 10 instance from them (compressed pixel data encapsulated
in the transfer syntax its media type names) and stores it through the same ingest path
as any other instance, so it retrieves like one.

Bulk values are held in memory while one instance is assembled; the request as a whole
still streams part by part to temporary files.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate

from dicomweb import multipart
from dicomweb.media import DICOM_JSON, DICOM_XML, FRAME_MEDIA_TYPES, OCTET_STREAM, MediaType, MediaTypeError

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
PIXEL_TAGS = ("7FE00010", "7FE00008", "7FE00009")


class MetadataError(ValueError):
    """One data set of the request cannot become an instance (a per-instance failure)."""


@dataclass
class Assembled:
    """A built instance (``file``) or why one data set could not be built (``error``)."""

    file: BinaryIO | None = None
    error: str = ""
    sop_class_uid: str | None = None
    instance_uid: str | None = None


def _content_type(part: multipart.Part) -> MediaType:
    try:
        return MediaType.parse(part.content_type or OCTET_STREAM)
    except MediaTypeError:
        return MediaType("application", "octet-stream")


def _datasets_of(part: multipart.Part, media: str) -> list[dict]:
    data = part.file.read()
    if media == DICOM_XML:
        from dicomweb.dicomxml import DicomXmlError, xml_to_json

        try:
            return [xml_to_json(data)]
        except DicomXmlError as exc:
            raise MetadataError(
                f"The XML metadata part is not a valid Native DICOM Model document: {exc}"
            ) from exc
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"The JSON metadata part is not valid JSON: {exc}") from exc
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
        raise MetadataError("The JSON metadata part must be a DICOM JSON data set or an array of them.")
    return parsed


def assemble(parts: Iterator[multipart.Part], metadata_type: str) -> Iterator[Assembled]:
    """Read every part, then yield one Part 10 file (or failure) per metadata data set."""
    metadata: list[dict] = []
    failures: list[str] = []
    bulk: dict[str, tuple[MediaType, bytes]] = {}
    for part in parts:
        media = _content_type(part)
        if media.mime in (DICOM_JSON, DICOM_XML):
            try:
                metadata.extend(_datasets_of(part, media.mime))
            except MetadataError as exc:
                failures.append(str(exc))
            continue
        location = (part.content_location or "").strip().strip("<>")
        if not location:
            failures.append(
                f"A {media.mime} bulk data part has no Content-Location, so nothing can reference it."
            )
            continue
        bulk[location] = (media, part.file.read())
    for message in failures:
        yield Assembled(error=message)
    used: set[str] = set()
    for dataset_json in metadata:
        yield _build(dataset_json, bulk, used)
    del metadata_type  # the part types above decide; the request type only gated the route


def _uid(dataset_json: dict, key: str) -> str | None:
    values = (dataset_json.get(key) or {}).get("Value") or []
    return str(values[0]) if values else None


def _build(dataset_json: dict, bulk: dict[str, tuple[MediaType, bytes]], used: set[str]) -> Assembled:
    sop_class, sop_instance = _uid(dataset_json, "00080016"), _uid(dataset_json, "00080018")
    result = Assembled(sop_class_uid=sop_class, instance_uid=sop_instance)
    transfer_syntax = EXPLICIT_VR_LE
    pixel_media: MediaType | None = None
    for key in PIXEL_TAGS:
        element = dataset_json.get(key)
        if element and "BulkDataURI" in element and element["BulkDataURI"] in bulk:
            pixel_media = bulk[element["BulkDataURI"]][0]
            if pixel_media.mime in FRAME_MEDIA_TYPES:
                transfer_syntax = (
                    pixel_media.params.get("transfer-syntax") or FRAME_MEDIA_TYPES[pixel_media.mime][0]
                )
                if transfer_syntax not in FRAME_MEDIA_TYPES[pixel_media.mime]:
                    result.error = (
                        f"Pixel data part: transfer syntax {transfer_syntax} does not fit {pixel_media.mime}"
                    )
                    return result

    def resolve(tag: str, vr: str, uri: str) -> bytes:
        if uri not in bulk:
            raise MetadataError(
                f"No bulk data part has Content-Location {uri!r} (referenced by ({tag[:4]},{tag[4:]}))"
            )
        used.add(uri)
        media, data = bulk[uri]
        if tag.upper() in PIXEL_TAGS and media.mime in FRAME_MEDIA_TYPES:
            return encapsulate([data])
        return data

    try:
        ds = Dataset.from_json(dataset_json, bulk_data_uri_handler=resolve)
    except MetadataError as exc:
        result.error = str(exc)
        return result
    except Exception as exc:  # pydicom raises several types for malformed DICOM JSON
        result.error = f"The metadata is not a valid DICOM JSON data set: {exc}"
        return result
    if not sop_class or not sop_instance:
        result.error = "The metadata lacks SOPClassUID (0008,0016) or SOPInstanceUID (0008,0018)"
        return result
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    if pixel_media is not None and pixel_media.mime in FRAME_MEDIA_TYPES and "PixelData" in ds:
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)  # noqa: SIM115  (handed to the caller)
    try:
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        spool.write(buffer.getvalue())
    except Exception as exc:
        spool.close()
        result.error = f"The metadata cannot be written as a DICOM instance: {exc}"
        return result
    spool.seek(0)
    result.file = spool  # type: ignore[assignment]
    return result
