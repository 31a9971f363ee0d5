"""Read a Part 10 stream's header and locate its frames, without loading pixel data.

``dcmread(stop_before_pixels=True, defer_size=…)`` parses everything up to the pixel
data element and leaves large values unread; the file position is then at the pixel
data element's tag. From there we read only item headers (8 bytes each) to build the
frame table: where each frame's bytes sit in the file, so that a later frame request is
one ranged read (highdicom ``ImageFileReader`` does the same with its offset table).

References: PS3.5 §7.5 (sequence/item encoding), §A.4 (encapsulation, Basic Offset
Table), PS3.5 §7.6 / Annex A.4 Extended Offset Table (7FE0,0001/0002).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from archive.errors import InvalidInstance, UnreadableInstance

logger = logging.getLogger(__name__)

# Values longer than this stay on disk while parsing; they become BulkDataURIs.
DEFER_SIZE = 64 * 1024

PIXEL_DATA_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


@dataclass(frozen=True, slots=True)
class PixelDataElement:
    tag: int
    vr: str
    value_offset: int  # absolute file offset of the value
    length: int | None  # None = undefined length (encapsulated)


@dataclass(slots=True)
class FrameTable:
    """Where each frame's bytes are in the stored blob.

    ``kind`` is ``"none"`` (no pixel data), ``"native"`` (frame *i* is
    ``[offset + i*frame_length, +frame_length)``), ``"encapsulated"`` (``frames[i]`` is
    a list of ``[offset, length]`` fragments) or ``"unindexed"`` (pixel data exists but
    its frames cannot be addressed by offset, e.g. deflated data sets or fragments that
    cannot be assigned to frames; ``reason`` says why — such frames are served by
    decoding the whole instance).
    """

    kind: str = "none"
    number_of_frames: int = 0
    pixel_data_tag: int | None = None
    pixel_data_vr: str | None = None
    offset: int | None = None
    length: int | None = None
    frame_length: int | None = None
    frames: list[list[list[int]]] = field(default_factory=list)
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "number_of_frames": self.number_of_frames}
        for name in ("pixel_data_tag", "pixel_data_vr", "offset", "length", "frame_length", "reason"):
            value = getattr(self, name)
            if value not in (None, ""):
                data[name] = value
        if self.kind == "encapsulated":
            data["frames"] = self.frames
        return data


@dataclass(slots=True)
class InstanceHeader:
    dataset: Dataset  # without pixel data; large values deferred
    transfer_syntax_uid: str
    file_size: int
    frame_table: FrameTable
    pixel_data: PixelDataElement | None


def read_header(fp: BinaryIO) -> InstanceHeader:
    """Parse a Part 10 stream's header and frame table; raise UnreadableInstance if it isn't one."""
    fp.seek(0, 2)
    file_size = fp.tell()
    fp.seek(0)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE)
    except Exception as exc:  # pydicom raises many types for garbage input
        raise UnreadableInstance(f"Not a readable DICOM Part 10 instance: {exc}") from exc
    file_meta = getattr(ds, "file_meta", None)
    ts = str(getattr(file_meta, "TransferSyntaxUID", "") or "").strip("\x00 ")
    if not ts:
        raise InvalidInstance(
            "The File Meta Information has no TransferSyntaxUID (0002,0010)", tag=0x00020010
        )
    uid = UID(ts)
    if ts == DeflatedExplicitVRLittleEndian:
        # The data set after the meta is one deflate stream: offsets are meaningless.
        has_pixels = _deflated_has_pixels(ds)
        table = FrameTable(kind="unindexed", reason="deflated data set") if has_pixels else FrameTable()
        if has_pixels:
            table.number_of_frames = _number_of_frames(ds)
        return InstanceHeader(ds, ts, file_size, table, None)
    try:
        little = uid.is_little_endian if uid.is_transfer_syntax else True
        implicit = uid.is_implicit_VR if uid.is_transfer_syntax else False
    except ValueError:
        little, implicit = True, False
    pixel = _read_pixel_element_header(fp, little, implicit, file_size)
    if pixel is None:
        return InstanceHeader(ds, ts, file_size, FrameTable(), None)
    try:
        table = _frame_table(fp, ds, pixel, little, file_size)
    except _FrameWalkError as exc:
        logger.warning("instance %s: frames not indexed: %s", ds.get("SOPInstanceUID", "?"), exc)
        table = FrameTable(
            kind="unindexed",
            number_of_frames=_number_of_frames(ds),
            pixel_data_tag=pixel.tag,
            pixel_data_vr=pixel.vr,
            offset=pixel.value_offset,
            length=pixel.length,
            reason=str(exc),
        )
    return InstanceHeader(ds, ts, file_size, table, pixel)


class _FrameWalkError(Exception):
    pass


def _raw_value(ds: Dataset, tag: int) -> Any:
    """A small attribute's value, from its raw bytes when they are the common encoding.

    The frame table needs half a dozen US/IS/CS values; converting each through
    ``Dataset.__getattr__`` (keyword lookup, a DataElement, value conversion) cost more
    than the rest of the frame walk. Anything but little-endian US, or plain ASCII IS
    and CS, goes through pydicom as before.
    """
    raw = ds.get_item(tag, keep_deferred=True) if tag in ds else None
    if raw is None:
        return None
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        value, vr = raw.value, raw.VR
        if vr == "US" and raw.is_little_endian and len(value) == 2:
            return value[0] | value[1] << 8
        if vr in ("IS", "CS") and value.isascii() and b"\\" not in value:
            text = value.decode("ascii").strip(" \x00")
            if vr == "CS":
                return text
            if text.isdigit():
                return int(text)
    return ds[tag].value


def _deflated_has_pixels(ds: Dataset) -> bool:
    # stop_before_pixels worked on the inflated buffer; Rows is the practical signal.
    return "Rows" in ds and "Columns" in ds


def _number_of_frames(ds: Dataset) -> int:
    try:
        value = _raw_value(ds, 0x00280008)
        frames = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        frames = 1
    return max(frames, 1)


def _read_pixel_element_header(
    fp: BinaryIO, little: bool, implicit: bool, file_size: int
) -> PixelDataElement | None:
    start = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        return None
    endian = "<" if little else ">"
    group, element = struct.unpack(endian + "HH", head[:4])
    tag = group << 16 | element
    if tag not in PIXEL_DATA_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack(endian + "L", head[4:8])
        vr = "OW" if tag == 0x7FE00010 else ("OF" if tag == 0x7FE00008 else "OD")
        value_offset = start + 8
    else:
        vr_bytes = head[4:6]
        vr = vr_bytes.decode("ascii", "replace")
        if vr_bytes in _LONG_VRS:
            more = fp.read(4)
            if len(more) < 4:
                return None
            (length,) = struct.unpack(endian + "L", more)
            value_offset = start + 12
        else:
            (length,) = struct.unpack(endian + "H", head[6:8])
            value_offset = start + 8
    return PixelDataElement(tag, vr, value_offset, None if length == _UNDEFINED else length)


def _frame_table(
    fp: BinaryIO, ds: Dataset, pixel: PixelDataElement, little: bool, file_size: int
) -> FrameTable:
    frames = _number_of_frames(ds)
    base = FrameTable(
        number_of_frames=frames,
        pixel_data_tag=pixel.tag,
        pixel_data_vr=pixel.vr,
        offset=pixel.value_offset,
        length=pixel.length,
    )
    if pixel.length is not None:
        if pixel.value_offset + pixel.length > file_size:
            raise _FrameWalkError(
                f"pixel data claims {pixel.length} bytes at offset {pixel.value_offset} "
                f"but the file has {file_size} bytes"
            )
        base.kind = "native"
        frame_bits = _native_frame_bits(ds)
        if frame_bits is not None and frame_bits % 8 == 0 and frame_bits > 0:
            base.frame_length = frame_bits // 8
            if base.frame_length * frames > pixel.length:
                raise _FrameWalkError(
                    f"{frames} frames of {base.frame_length} bytes do not fit in "
                    f"{pixel.length} bytes of pixel data"
                )
        elif frame_bits is None:
            raise _FrameWalkError("Rows/Columns/BitsAllocated missing or invalid")
        # else: bit-packed frames (BitsAllocated 1) are not byte aligned; frame_length stays None.
        return base
    base.kind = "encapsulated"
    base.frames = _encapsulated_frames(fp, ds, pixel, little, frames, file_size)
    return base


def _native_frame_bits(ds: Dataset) -> int | None:
    try:
        rows = int(_raw_value(ds, 0x00280010))
        columns = int(_raw_value(ds, 0x00280011))
        bits = int(_raw_value(ds, 0x00280100) or 0)
        if not bits and 0x7FE00008 in ds:  # FloatPixelData
            bits = 32
        samples = int(_raw_value(ds, 0x00280002) or 1)
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
    if rows <= 0 or columns <= 0 or bits <= 0:
        return None
    if samples == 3 and str(_raw_value(ds, 0x00280004) or "").strip() == "YBR_FULL_422":
        # Native 4:2:2 keeps two chroma samples per pair of pixels (PS3.3 C.7.6.3.1.2).
        return rows * columns * 2 * bits
    return rows * columns * samples * bits


def _encapsulated_frames(
    fp: BinaryIO, ds: Dataset, pixel: PixelDataElement, little: bool, frames: int, file_size: int
) -> list[list[list[int]]]:
    """Walk the items of encapsulated pixel data and group fragments into frames."""
    endian = "<" if little else ">"
    pos = pixel.value_offset
    fp.seek(pos)
    offsets_bot: list[int] = []
    fragments: list[tuple[int, int, int]] = []  # (item start, value offset, length)
    first = True
    while True:
        head = fp.read(8)
        if len(head) < 8:
            raise _FrameWalkError(f"encapsulated pixel data ends without a sequence delimiter at byte {pos}")
        group, element, length = struct.unpack(endian + "HHL", head)
        tag = group << 16 | element
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM:
            raise _FrameWalkError(
                f"expected an item tag (FFFE,E000) at byte {pos}, found ({group:04X},{element:04X})"
            )
        if length == _UNDEFINED or pos + 8 + length > file_size:
            raise _FrameWalkError(f"item at byte {pos} has an invalid length {length}")
        if first:
            if length % 4:
                raise _FrameWalkError("Basic Offset Table length is not a multiple of 4")
            table = fp.read(length)
            offsets_bot = list(struct.unpack(f"{endian}{length // 4}L", table)) if length else []
            first = False
        else:
            fragments.append((pos, pos + 8, length))
            fp.seek(length, 1)
        pos += 8 + length
    if not fragments:
        raise _FrameWalkError("encapsulated pixel data has no fragments")
    first_item = fragments[0][0]

    if frames == 1:
        return [[[value, length] for _, value, length in fragments]]
    if offsets_bot and len(offsets_bot) == frames:
        starts = {first_item + off for off in offsets_bot}
        return _group_by_starts(fragments, starts, frames, "Basic Offset Table")
    eot = _extended_offsets(ds, endian)
    if eot is not None and len(eot) == frames:
        starts = {first_item + off for off in eot}
        return _group_by_starts(fragments, starts, frames, "Extended Offset Table")
    if len(fragments) == frames:
        return [[[value, length]] for _, value, length in fragments]
    # Several fragments per frame and no offset table: a frame starts with a codestream marker.
    starts = set()
    for item_start, value, length in fragments:
        if length >= 2:
            fp.seek(value)
            magic = fp.read(4)
            if magic[:2] == b"\xff\xd8" or magic == b"\xff\x4f\xff\x51":
                starts.add(item_start)
    return _group_by_starts(fragments, starts, frames, "codestream markers")


def _group_by_starts(
    fragments: list[tuple[int, int, int]], starts: set[int], frames: int, source: str
) -> list[list[list[int]]]:
    grouped: list[list[list[int]]] = []
    for item_start, value, length in fragments:
        if item_start in starts or not grouped:
            grouped.append([])
        grouped[-1].append([value, length])
    if len(grouped) != frames:
        raise _FrameWalkError(f"{source} gives {len(grouped)} frames but NumberOfFrames is {frames}")
    return grouped


def _extended_offsets(ds: Dataset, endian: str) -> list[int] | None:
    elem = ds.get_item(0x7FE00001) if 0x7FE00001 in ds else None
    if elem is None:
        return None
    value = elem.value
    if not isinstance(value, bytes | bytearray) or len(value) % 8:
        return None
    return list(struct.unpack(f"{endian}{len(value) // 8}Q", value))
