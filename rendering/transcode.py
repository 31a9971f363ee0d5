"""Transfer syntax conversion for WADO-RS retrieve (PS3.18 §8.7.3, §10.4). No Django imports.

* :func:`transcode_instance` - a stored Part 10 instance rewritten in another transfer syntax.
* :func:`decode_frame` - one stored frame as native little-endian pixel bytes
  (what ``application/octet-stream`` frame retrieval returns for a compressed instance).
* :func:`encode_frame` - one frame's native bytes as one lossless compressed codestream.

Everything that cannot be done raises :class:`TranscodeError` with a message fit for a 406
response: unreadable or undecodable sources, targets not produced here, pixel data a target
cannot hold. Lossy targets are never produced; decoding a lossy source is allowed
(PS3.18 §8.7.3.5.2), and marks the result Lossy Image Compression "01".

Colour: a lossy (JPEG baseline …) source is decoded as a viewer shows it, YBR converted to RGB
as pydicom's ``pixel_array`` and ``Dataset.decompress`` do; a lossless source keeps its stored
colour space and exact values (YBR_FULL stays YBR_FULL), except that YBR_FULL_422 becomes
YBR_FULL once upsampled and YBR_RCT/YBR_ICT become RGB once the codec has undone its
component transform. Multi-sample output is always Planar Configuration 0.

Memory: the stored instance is read with large elements deferred and the pixel data is
decoded a frame at a time from the source file; a native target streams frame by frame into
the output, a compressed target holds the compressed frames until they are encapsulated.
"""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomIO
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.pixels import as_pixel_options, get_decoder, pack_bits
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, AllTransferSyntaxes

from rendering import codecs
from rendering.codecs import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    LOSSLESS_TARGETS,
    LOSSY_METHODS,
    LOSSY_SYNTAXES,
    MAYBE_LOSSY_SYNTAXES,
    NATIVE_SYNTAXES,
    NATIVE_TARGETS,
    describe,
)

__all__ = ["PixelDescription", "TranscodeError", "decode_frame", "encode_frame", "transcode_instance"]

logger = logging.getLogger(__name__)

SPOOL_MAX_SIZE = 32 * 1024 * 1024  # output kept in memory up to this size, then on disk
_DEFER_SIZE = 64 * 1024  # elements larger than this stay in the source file until needed
_COPY_CHUNK = 1 << 20

PIXEL_DATA = 0x7FE00010
EXTENDED_OFFSET_TABLE = 0x7FE00001
EXTENDED_OFFSET_TABLE_LENGTHS = 0x7FE00002
TRAILING_PADDING = 0xFFFCFFFC
_SWAP_WIDTHS = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
_KNOWN_SYNTAXES = frozenset(str(uid) for uid in AllTransferSyntaxes) | NATIVE_SYNTAXES


class TranscodeError(Exception):
    """The instance or frame cannot be returned in the requested transfer syntax."""


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


# --- pixel descriptions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PixelDescription:
    """The Image Pixel module values needed to interpret one frame."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int = 0
    number_of_frames: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.rows < 1 or self.columns < 1:
            problems.append(f"Rows {self.rows} / Columns {self.columns}")
        if self.samples_per_pixel not in (1, 3, 4):
            problems.append(f"Samples per Pixel {self.samples_per_pixel}")
        if self.bits_allocated != 1 and (self.bits_allocated < 8 or self.bits_allocated % 8):
            problems.append(f"Bits Allocated {self.bits_allocated}")
        if not 1 <= self.bits_stored <= self.bits_allocated:
            problems.append(f"Bits Stored {self.bits_stored}")
        if self.pixel_representation not in (0, 1):
            problems.append(f"Pixel Representation {self.pixel_representation}")
        if self.planar_configuration not in (0, 1):
            problems.append(f"Planar Configuration {self.planar_configuration}")
        if self.number_of_frames < 1:
            problems.append(f"Number of Frames {self.number_of_frames}")
        if problems:
            raise TranscodeError(f"invalid pixel description: {', '.join(problems)}")

    @classmethod
    def _build(cls, get: Any) -> PixelDescription:
        missing = [name for name in ("Rows", "Columns", "BitsAllocated") if get(name) is None]
        if missing:
            raise TranscodeError(f"the instance has no {', '.join(missing)}: no pixel data to describe")
        samples = int(get("SamplesPerPixel") or 1)
        bits_allocated = int(get("BitsAllocated"))
        photometric = get("PhotometricInterpretation") or ("MONOCHROME2" if samples == 1 else "RGB")
        try:
            frames = int(get("NumberOfFrames") or 1)
        except (TypeError, ValueError):
            frames = 1
        return cls(
            rows=int(get("Rows")),
            columns=int(get("Columns")),
            samples_per_pixel=samples,
            bits_allocated=bits_allocated,
            bits_stored=int(get("BitsStored") or bits_allocated),
            pixel_representation=int(get("PixelRepresentation") or 0),
            photometric_interpretation=str(photometric).strip(),
            planar_configuration=int(get("PlanarConfiguration") or 0) if samples > 1 else 0,
            number_of_frames=max(frames, 1),
        )

    @classmethod
    def from_dataset(cls, ds: Dataset) -> PixelDescription:
        def get(keyword: str) -> Any:
            value = ds.get(keyword)
            return None if value is None or value == "" else value

        return cls._build(get)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PixelDescription:
        """From a DICOM JSON object (PS3.18 §F.2): ``{"00280010": {"vr": "US", "Value": [512]}}``."""
        tags = {
            "Rows": "00280010",
            "Columns": "00280011",
            "SamplesPerPixel": "00280002",
            "BitsAllocated": "00280100",
            "BitsStored": "00280101",
            "PixelRepresentation": "00280103",
            "PhotometricInterpretation": "00280004",
            "PlanarConfiguration": "00280006",
            "NumberOfFrames": "00280008",
        }

        def get(keyword: str) -> Any:
            element = data.get(tags[keyword]) or data.get(tags[keyword].lower())
            values = element.get("Value") if isinstance(element, Mapping) else None
            if not values or values[0] is None or values[0] == "":
                return None
            return values[0]

        return cls._build(get)

    @property
    def frame_length(self) -> int:
        """Bytes of one native frame (bit-packed frames are rounded up to a byte)."""
        if self.bits_allocated == 1:
            return math.ceil(self.rows * self.columns * self.samples_per_pixel / 8)
        samples = 2 if self.photometric_interpretation == "YBR_FULL_422" else self.samples_per_pixel
        return self.rows * self.columns * samples * (self.bits_allocated // 8)

    def decoder_options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "rows": self.rows,
            "columns": self.columns,
            "samples_per_pixel": self.samples_per_pixel,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": self.pixel_representation,
            "photometric_interpretation": self.photometric_interpretation,
            "number_of_frames": self.number_of_frames,
        }
        if self.samples_per_pixel > 1:
            options["planar_configuration"] = self.planar_configuration
        options.update(overrides)
        return options


# --- helpers ------------------------------------------------------------------------------------


def _swap(data: bytes, width: int) -> bytes:
    """Byte-swap ``data`` in ``width``-byte units (a trailing odd byte is kept as it is)."""
    if width <= 1 or len(data) < width:
        return bytes(data)
    whole = len(data) - len(data) % width
    swapped = np.frombuffer(data, dtype=f">u{width}", count=whole // width).astype(f"<u{width}")
    return swapped.tobytes() + bytes(data[whole:])


def _pixel_swap_width(bits_allocated: int, vr: str | None) -> int:
    if bits_allocated in (16, 32, 64):
        return bits_allocated // 8
    return 2 if vr == "OW" else 1  # 8-bit samples in OW words (PS3.5 Annex D)


def _normalised_photometric(value: Any) -> str:
    photometric = str(getattr(value, "value", value)).strip()
    if photometric in ("YBR_RCT", "YBR_ICT"):
        return "RGB"  # the codec has undone its component transform
    if photometric == "YBR_FULL_422":
        return "YBR_FULL"  # decoded (or upsampled) to full resolution
    return photometric


def _little_endian_bytes(arr: np.ndarray, bits_allocated: int) -> bytes:
    if bits_allocated == 1:
        return pack_bits(arr)
    if arr.dtype.itemsize * 8 != bits_allocated:
        raise TranscodeError(
            f"decoded {arr.dtype.itemsize * 8}-bit samples do not fit Bits Allocated {bits_allocated}"
        )
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _check_target(target: str) -> None:
    if target in codecs.encodable():
        return
    if target in NATIVE_SYNTAXES:
        raise TranscodeError(f"{describe(target)} is not written here (it is retired)")
    if target in LOSSLESS_TARGETS:
        raise TranscodeError(f"no working encoder for {describe(target)} is installed here")
    if target in _KNOWN_SYNTAXES:
        raise TranscodeError(f"{describe(target)} is not produced here (lossy or unsupported)")
    raise TranscodeError(f"{target} is not a transfer syntax known here")


# --- single frames ------------------------------------------------------------------------------


def decode_frame(
    frame: bytes,
    *,
    source_ts: str,
    pixel: PixelDescription,
    as_rgb: bool = False,
    pixel_vr: str | None = None,
) -> bytes:
    """One stored frame as native little-endian pixel bytes.

    Native little-endian frames come back as they are; big-endian ones byte-swapped
    (``pixel_vr="OW"`` for 8-bit samples stored in OW words). A compressed frame is decoded
    with pydicom's decoder, samples interleaved (Planar Configuration 0). By default the
    stored colour space is kept, so the bytes agree with the instance's metadata (YBR_FULL
    stays YBR_FULL; YBR_RCT/YBR_ICT come out as RGB, the codec undoing its transform) and can
    go straight to :func:`encode_frame`. With ``as_rgb=True`` YBR is converted to RGB and the
    result equals ``ds.pixel_array[i].tobytes()``.
    """
    ts = str(source_ts)
    if ts in (IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE):
        return bytes(frame)
    if ts == EXPLICIT_VR_BE:
        return _swap(bytes(frame), _pixel_swap_width(pixel.bits_allocated, pixel_vr))
    if ts not in codecs.decodable():
        raise TranscodeError(f"no decoder for {describe(ts)} is installed here")
    try:
        arr, _ = codecs.decode_codestream(
            bytes(frame),
            transfer_syntax=ts,
            rows=pixel.rows,
            columns=pixel.columns,
            samples_per_pixel=pixel.samples_per_pixel,
            bits_allocated=pixel.bits_allocated,
            bits_stored=pixel.bits_stored,
            pixel_representation=pixel.pixel_representation,
            photometric_interpretation=pixel.photometric_interpretation,
            planar_configuration=pixel.planar_configuration,
            as_rgb=as_rgb,
        )
    except Exception as exc:
        raise TranscodeError(f"the {describe(ts)} frame cannot be decoded: {_first_line(exc)}") from exc
    return _little_endian_bytes(arr, pixel.bits_allocated)


def _native_frame_array(native: bytes, pixel: PixelDescription) -> tuple[np.ndarray, str]:
    """A native little-endian frame as an array (samples interleaved) and its colour space."""
    options = pixel.decoder_options(number_of_frames=1, pixel_keyword="PixelData")
    full_length = pixel.rows * pixel.columns * pixel.samples_per_pixel * max(pixel.bits_allocated // 8, 1)
    if pixel.photometric_interpretation == "YBR_FULL_422" and len(native) >= full_length:
        options["photometric_interpretation"] = "YBR_FULL"  # already upsampled (decoded) data
    arr, properties = get_decoder(EXPLICIT_VR_LE).as_array(bytes(native), raw=True, **options)
    return arr, _normalised_photometric(properties["photometric_interpretation"])


def encode_frame(native: bytes, *, pixel: PixelDescription, target_ts: str) -> bytes:
    """One frame's native little-endian bytes (laid out as ``pixel`` says) as one codestream.

    Only lossless compressed targets; the colour space is kept (YBR_FULL_422 data, as stored or
    already upsampled, is coded as full-resolution YBR_FULL).
    """
    target = str(target_ts)
    if target not in LOSSLESS_TARGETS:
        if target in NATIVE_SYNTAXES:
            raise TranscodeError(f"{describe(target)} is native: a frame in it needs no encoding")
        raise TranscodeError(f"{describe(target)} is not a lossless compressed syntax produced here")
    _check_target(target)
    try:
        arr, photometric = _native_frame_array(native, pixel)
    except TranscodeError:
        raise
    except Exception as exc:
        raise TranscodeError(f"the native frame does not match its description: {_first_line(exc)}") from exc
    try:
        return codecs.encode_array(
            arr,
            transfer_syntax=target,
            photometric_interpretation=photometric,
            bits_stored=pixel.bits_stored,
            pixel_representation=pixel.pixel_representation,
            bits_allocated=pixel.bits_allocated,
        )
    except codecs.CodecError as exc:
        raise TranscodeError(str(exc)) from exc


# --- whole instances ----------------------------------------------------------------------------


def transcode_instance(src: BinaryIO, target_ts: str) -> BinaryIO:
    """The Part 10 instance read from ``src`` (from its current position) in ``target_ts``.

    Returns a ``SpooledTemporaryFile`` positioned at 0 (the caller closes it). The same syntax
    (or ``*``) gives an untouched copy.
    """
    started = time.perf_counter()
    target = str(target_ts).strip()
    start = src.tell()
    ds = _read_instance(src, start)
    source = str(ds.file_meta.get("TransferSyntaxUID", "") or "").strip()
    if not source:
        raise TranscodeError("the stored instance has no Transfer Syntax UID")
    output = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_SIZE)  # noqa: SIM115 - returned open
    try:
        if target in (source, "*"):
            src.seek(start)
            shutil.copyfileobj(src, output, _COPY_CHUNK)
            target = source
        else:
            if source not in _KNOWN_SYNTAXES:
                raise TranscodeError(f"the stored transfer syntax {source} is unknown: cannot decode it")
            _check_target(target)
            _InstanceTranscoder(ds, src, source, target).write(output)
        output.seek(0, 2)
        size = output.tell()
        output.seek(0)
    except TranscodeError:
        output.close()
        raise
    except Exception as exc:
        output.close()
        raise TranscodeError(
            f"cannot convert from {describe(source)} to {describe(target)}: {_first_line(exc)}"
        ) from exc
    logger.info(
        "transcoded %s from %s to %s: %d bytes in %.1f ms",
        ds.get("SOPInstanceUID", "?"),
        source,
        target,
        size,
        (time.perf_counter() - started) * 1000,
    )
    return output


def _read_instance(src: BinaryIO, start: int) -> Dataset:
    try:
        ds = pydicom.dcmread(src, defer_size=_DEFER_SIZE)
        if ds.file_meta.get("TransferSyntaxUID") == DEFLATED_EXPLICIT_VR_LE:
            # Deferred reads address the inflated stream, which is gone: read everything now.
            src.seek(start)
            ds = pydicom.dcmread(src)
    except Exception as exc:
        raise TranscodeError(
            f"the stored instance is not a readable DICOM Part 10 file: {_first_line(exc)}"
        ) from exc
    _check_not_truncated(ds, src)
    return ds


def _check_not_truncated(ds: Dataset, src: BinaryIO) -> None:
    """pydicom reads a truncated file quietly: a value shorter than its length betrays it."""
    end = src.seek(0, 2)
    for tag in list(ds.keys()):
        element = ds.get_item(tag, keep_deferred=True)
        if not isinstance(element, RawDataElement) or element.length == 0xFFFFFFFF:
            continue
        if element.value is None:  # deferred: still in the file
            short = element.value_tell + element.length > end
        else:
            short = len(element.value) < element.length
        if short:
            raise TranscodeError(
                f"the stored instance is truncated: {element.tag} runs past the end of the file"
            )


def _pixel_keyword(ds: Dataset) -> str | None:
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            return keyword
    return None


def _file_meta(ds: Dataset, target: str) -> FileMetaDataset:
    old = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    replaced = {0x00020000, 0x00020001, 0x00020010, 0x00020012, 0x00020013}
    for element in old:
        if element.tag not in replaced:
            meta.add(element)
    meta.FileMetaInformationVersion = b"\x00\x01"
    if ds.get("SOPClassUID"):
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if ds.get("SOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = target
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
    return meta


def _swap_to_little_endian(dataset: Dataset, *, pixel_data: bool, top: bool = True) -> None:
    """Byte-swap the OW/OL/OF/OD/OV values of a dataset read as big endian (pydicom leaves
    byte strings as they were read; numbers and text it re-encodes itself)."""
    for tag in list(dataset.keys()):
        if top and tag == PIXEL_DATA:
            if pixel_data:
                element = dataset[tag]
                bits = int(dataset.get("BitsAllocated", 8) or 8)
                element.value = _swap(element.value, _pixel_swap_width(bits, element.VR))
                element.VR = "OW" if bits > 8 else element.VR
            continue
        element = dataset[tag]
        if element.VR == "SQ":
            for item in element.value or []:
                _swap_to_little_endian(item, pixel_data=False, top=False)
        elif element.VR in _SWAP_WIDTHS and isinstance(element.value, (bytes, bytearray)):
            element.value = _swap(element.value, _SWAP_WIDTHS[element.VR])


def _mark_lossy(ds: Dataset, source: str) -> None:
    """PS3.3 C.7.6.1.1.5: pixels that went through lossy compression stay marked as such."""
    maybe = source in MAYBE_LOSSY_SYNTAXES and ds.get("LossyImageCompression") != "00"
    if source in LOSSY_SYNTAXES or maybe:
        ds.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in ds and source in LOSSY_METHODS:
            ds.LossyImageCompressionMethod = LOSSY_METHODS[source]


class _InstanceTranscoder:
    def __init__(self, ds: Dataset, src: BinaryIO, source: str, target: str) -> None:
        self.ds = ds
        self.src = src
        self.source = source
        self.target = target

    def write(self, out: BinaryIO) -> None:
        ds, source, target = self.ds, self.source, self.target
        keyword = _pixel_keyword(ds)
        target_native = target in NATIVE_TARGETS
        source_native = source in NATIVE_SYNTAXES
        if not len(ds):
            raise TranscodeError("the stored instance has no data set (truncated?)")
        if keyword is None and not source_native and "Rows" in ds and "BitsAllocated" in ds:
            # pydicom stops quietly at a premature end of file: do not return an image without pixels.
            raise TranscodeError(f"the {describe(source)} image has no pixel data (truncated?)")
        if not target_native and keyword is None:
            raise TranscodeError(f"an instance without pixel data cannot be encoded in {describe(target)}")
        if not target_native and keyword != "PixelData":
            raise TranscodeError(f"float pixel data cannot be encoded in {describe(target)}")
        pixel_work = keyword == "PixelData" and not (source_native and target_native)
        if pixel_work and not source_native and source not in codecs.decodable():
            raise TranscodeError(f"no decoder for {describe(source)} is installed here")
        ds.file_meta = _file_meta(ds, target)
        ds.preamble = b"\x00" * 128
        if not pixel_work:
            if source == EXPLICIT_VR_BE:
                _swap_to_little_endian(ds, pixel_data=True)
            dcmwrite(out, ds, enforce_file_format=True)
            return

        # Everything but the pixel data is read now, so that writing the header never seeks
        # the source file while frames are being decoded from it.
        for tag in list(ds.keys()):
            if tag != PIXEL_DATA:
                ds[tag]  # loads a deferred value
        if source == EXPLICIT_VR_BE:
            _swap_to_little_endian(ds, pixel_data=False)
        as_rgb = source in LOSSY_SYNTAXES
        frames = self._decoded_frames(as_rgb=as_rgb)
        first = next(frames, None)
        if first is None:
            raise TranscodeError("the pixel data holds no frame")
        arr, properties = first
        self._update_pixel_module(properties)
        if not source_native:
            _mark_lossy(ds, source)
        tail = self._detach_pixel_data_and_tail()
        all_frames = itertools.chain([arr], (frame for frame, _ in frames))
        if target_native:
            self._write_native(out, all_frames, tail)
        else:
            self._write_encapsulated(out, all_frames, tail, properties)

    def _decoded_frames(self, *, as_rgb: bool) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        ds = self.ds
        element = ds.get_item(PIXEL_DATA, keep_deferred=True)
        options = as_pixel_options(ds)
        options["pixel_keyword"] = "PixelData"
        if element.VR in ("OB", "OW"):
            options["pixel_vr"] = element.VR
        if isinstance(element, RawDataElement) and element.value is None:
            self.src.seek(element.value_tell)  # decode straight from the stored file
            pixel_source: Any = self.src
        else:
            pixel_source = element.value
        count = int(options["number_of_frames"])
        decoder = get_decoder(self.source)
        produced = 0
        try:
            for arr, properties in decoder.iter_array(pixel_source, as_rgb=as_rgb, **options):
                if produced == count:
                    break  # JPEG may yield more frames than Number of Frames
                produced += 1
                yield arr, properties
        except TranscodeError:
            raise
        except Exception as exc:
            raise TranscodeError(
                f"frame {produced + 1} of the {describe(self.source)} pixel data cannot be decoded: "
                f"{_first_line(exc)}"
            ) from exc
        if produced < count:
            raise TranscodeError(f"the pixel data holds {produced} of its {count} frames")

    def _update_pixel_module(self, properties: Mapping[str, Any]) -> None:
        ds = self.ds
        ds.PhotometricInterpretation = _normalised_photometric(properties["photometric_interpretation"])
        if int(properties.get("samples_per_pixel", 1)) > 1:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated = int(properties["bits_allocated"])
        if "bits_stored" in properties:
            ds.BitsStored = int(properties["bits_stored"])
        if "pixel_representation" in properties:
            ds.PixelRepresentation = int(properties["pixel_representation"])

    def _detach_pixel_data_and_tail(self) -> Dataset:
        """Remove Pixel Data (and the old offset tables); return what followed it."""
        ds = self.ds
        tail = Dataset()
        for tag in list(ds.keys()):
            if tag > PIXEL_DATA and tag != TRAILING_PADDING:
                tail.add(ds[tag])
            if tag >= PIXEL_DATA or tag in (EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS):
                del ds[tag]
        return tail

    def _frame_shape(self) -> tuple[int, int]:
        ds = self.ds
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.BitsAllocated)
        length = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * max(bits // 8, 1)
        return frames, length

    def _write_native(self, out: BinaryIO, frames: Iterator[np.ndarray], tail: Dataset) -> None:
        ds, target = self.ds, self.target
        bits = int(ds.BitsAllocated)
        count, frame_length = self._frame_shape()
        vr = "OB" if bits <= 8 else "OW"
        if bits == 1 or target == DEFLATED_EXPLICIT_VR_LE:
            # Bit-packed frames share bytes; deflate compresses the whole dataset: in memory.
            if bits == 1:
                value = pack_bits(np.concatenate([frame.ravel() for frame in frames]))
            else:
                value = b"".join(self._checked(_little_endian_bytes(f, bits), frame_length) for f in frames)
            ds.PixelData = value
            ds["PixelData"].VR = vr
            ds.update(tail)
            dcmwrite(out, ds, enforce_file_format=True)
            return
        length = count * frame_length
        dcmwrite(out, ds, enforce_file_format=True)
        if target == IMPLICIT_VR_LE:
            out.write(struct.pack("<HHI", 0x7FE0, 0x0010, length + length % 2))
        else:
            out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr.encode(), 0, length + length % 2))
        for frame in frames:
            out.write(self._checked(_little_endian_bytes(frame, bits), frame_length))
        if length % 2:
            out.write(b"\x00")
        self._write_tail(out, tail)

    @staticmethod
    def _checked(data: bytes, expected: int) -> bytes:
        if len(data) != expected:
            raise TranscodeError(f"a decoded frame has {len(data)} bytes where {expected} were expected")
        return data

    def _write_encapsulated(
        self, out: BinaryIO, frames: Iterator[np.ndarray], tail: Dataset, properties: Mapping[str, Any]
    ) -> None:
        ds, target = self.ds, self.target
        encoded = []
        for arr in frames:
            try:
                data = codecs.encode_array(
                    arr,
                    transfer_syntax=target,
                    photometric_interpretation=str(ds.PhotometricInterpretation),
                    bits_stored=int(ds.get("BitsStored", properties["bits_allocated"])),
                    pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
                    bits_allocated=int(ds.BitsAllocated),
                )
            except codecs.CodecError as exc:
                raise TranscodeError(str(exc)) from exc
            encoded.append(data + b"\x00" if len(data) % 2 else data)
        offsets = list(itertools.accumulate((8 + len(frame) for frame in encoded[:-1]), initial=0))
        if offsets[-1] > 0xFFFFFFFF:  # PS3.5 A.4: beyond the Basic Offset Table's reach
            ds.ExtendedOffsetTable = struct.pack(f"<{len(offsets)}Q", *offsets)
            ds.ExtendedOffsetTableLengths = struct.pack(f"<{len(encoded)}Q", *(len(f) for f in encoded))
            basic_offsets = b""
        else:
            basic_offsets = struct.pack(f"<{len(offsets)}I", *offsets)
        dcmwrite(out, ds, enforce_file_format=True)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        out.write(struct.pack("<HHI", 0xFFFE, 0xE000, len(basic_offsets)) + basic_offsets)
        for frame in encoded:
            out.write(struct.pack("<HHI", 0xFFFE, 0xE000, len(frame)))
            out.write(frame)
        out.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
        self._write_tail(out, tail)

    def _write_tail(self, out: BinaryIO, tail: Dataset) -> None:
        if not len(tail):
            return
        fp = DicomIO(out)
        fp.is_little_endian = True
        fp.is_implicit_VR = self.target == IMPLICIT_VR_LE
        write_dataset(fp, tail)
