"""Transcoding instances and frames: pixel-exact results, Part 10 structure, errors as TranscodeError."""

from __future__ import annotations

import io
import logging
import struct
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder

from rendering import codecs
from rendering.codecs import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    HTJ2K_LOSSLESS,
    IMPLICIT_VR_LE,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    LOSSLESS_TARGETS,
    NATIVE_TARGETS,
    RLE_LOSSLESS,
)
from rendering.transcode import (
    PixelDescription,
    TranscodeError,
    decode_frame,
    encode_frame,
    transcode_instance,
)
from tests.factories import make_dataset, to_part10
from tests.testdata import readable_part10_files
from tests.testdata import testdata_file as corpus_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LOSSLESS = sorted(codecs.encodable() & LOSSLESS_TARGETS)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


# --- helpers ------------------------------------------------------------------------------------


def _ids(paths: tuple[Path, ...]) -> list[str]:
    counts = Counter(path.name for path in paths)
    return [path.name if counts[path.name] == 1 else f"{path.parent.name}/{path.name}" for path in paths]


def _transcode(data: bytes, target: str) -> bytes:
    output = transcode_instance(io.BytesIO(data), target)
    try:
        assert output.tell() == 0
        return output.read()
    finally:
        output.close()


def _meta_group_end(data: bytes) -> int:
    """Offset where File Meta Information (explicit VR little endian) ends."""
    pos = 132
    while pos < len(data):
        group, _ = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return pos
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            (length,) = struct.unpack_from("<I", data, pos + 8)
            pos += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8 + length
    return pos


def _check_part10(data: bytes, target: str) -> pydicom.Dataset:
    assert data[:128] == bytes(128), "the preamble is zeroed"
    assert data[128:132] == b"DICM"
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == target
    assert ds.file_meta.FileMetaInformationGroupLength == _meta_group_end(data) - 144
    return ds


def _pixels(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array


def _has_pixels(ds: pydicom.Dataset) -> bool:
    return any(keyword in ds for keyword in PIXEL_KEYWORDS)


# --- every decodable corpus file to Explicit VR Little Endian ------------------------------------

CORPUS = readable_part10_files()


@pytest.mark.parametrize("path", CORPUS, ids=_ids(CORPUS))
def test_corpus_file_to_explicit_vr_little_endian(path: Path):
    original = pydicom.dcmread(path)
    source = original.file_meta.get("TransferSyntaxUID")
    expected = None
    if _has_pixels(original):
        try:
            expected = original.pixel_array
        except Exception as exc:
            pytest.skip(f"pydicom cannot decode it either: {exc}")
    data = path.read_bytes()
    try:
        result_bytes = _transcode(data, EXPLICIT_VR_LE)
    except TranscodeError as exc:
        # Only an instance without pixels we can read may be refused: syntax missing or unknown,
        # no UIDs for its File Meta Information, or a data set that ends early.
        assert expected is None, exc
        return
    if source == EXPLICIT_VR_LE:
        assert result_bytes == data  # same syntax: an untouched copy
        return
    result = _check_part10(result_bytes, EXPLICIT_VR_LE)
    assert result.get("SOPInstanceUID") == original.get("SOPInstanceUID")
    if expected is None:
        assert set(result.keys()) >= {
            elem.tag for elem in original if elem.tag.group > 2 and elem.tag.element
        }
        return
    assert np.array_equal(_pixels(result), expected)
    if "PixelData" in result and result.get("SamplesPerPixel", 1) > 1 and source not in (EXPLICIT_VR_BE,):
        assert result.get("PlanarConfiguration", 0) in (0, original.get("PlanarConfiguration", 0))


# --- lossless targets ---------------------------------------------------------------------------


def _synthetic_rgb(*, planar: int = 0, frames: int = 1) -> bytes:
    ds = make_dataset(rows=40, columns=56, frames=frames, modality="OT")
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, (frames, 40, 56, 3), dtype=np.uint8)
    pixels[:, 5:20, 5:30] = (10, 200, 60)
    if planar:
        pixels = pixels.transpose(0, 3, 1, 2)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.PixelData = pixels.tobytes()
    return to_part10(ds)


def _synthetic_signed() -> bytes:
    ds = make_dataset(rows=48, columns=64)
    rng = np.random.default_rng(12)
    pixels = rng.integers(-32768, 32768, (48, 64)).astype("<i2")
    pixels[0, 0], pixels[-1, -1] = -32768, 32767
    ds.PixelRepresentation = 1
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelData = pixels.tobytes()
    return to_part10(ds)


SOURCES = {
    "synthetic 16-bit unsigned": lambda: to_part10(make_dataset(rows=64, columns=48, pixel_seed=1)),
    "synthetic 16-bit signed": _synthetic_signed,
    "synthetic 16-bit implicit VR": lambda: to_part10(
        make_dataset(rows=33, columns=35), transfer_syntax=IMPLICIT_VR_LE
    ),
    "synthetic 16x16 (under OpenJPEG's 32 px)": lambda: to_part10(make_dataset()),
    "synthetic 3 frames": lambda: to_part10(make_dataset(rows=64, columns=64, frames=3, pixel_seed=2)),
    "synthetic 8-bit RGB": _synthetic_rgb,
    "synthetic 8-bit RGB planar": lambda: _synthetic_rgb(planar=1, frames=2),
    "CT_small.dcm": "CT_small.dcm",
    "MR_small_bigendian.dcm": "MR_small_bigendian.dcm",
    "SC_rgb_expb_16bit_2frame.dcm": "SC_rgb_expb_16bit_2frame.dcm",
    "emri_small_jpeg_2k_lossless.dcm": "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm": "emri_small_jpeg_ls_lossless.dcm",
    "SC_rgb_rle_2frame.dcm": "SC_rgb_rle_2frame.dcm",
    "US1_J2KR.dcm": "US1_J2KR.dcm",
    "SC_rgb_jpeg_dcmtk.dcm": "SC_rgb_jpeg_dcmtk.dcm",
    "SC_ybr_full_422_uncompressed.dcm": "SC_ybr_full_422_uncompressed.dcm",
}
LOSSY_SOURCES = {"SC_rgb_jpeg_dcmtk.dcm"}
# Lossless YBR_FULL pixels keep their colour space, which the JPEG lossless encoder cannot code.
REFUSED = {
    ("SC_ybr_full_422_uncompressed.dcm", JPEG_LOSSLESS_SV1),
    ("SC_ybr_full_422_uncompressed.dcm", JPEG_LOSSLESS),
}


def _source_bytes(name: str) -> bytes:
    source = SOURCES[name]
    return corpus_file(source).read_bytes() if isinstance(source, str) else source()


@pytest.mark.parametrize("target", LOSSLESS, ids=codecs.describe)
@pytest.mark.parametrize("name", list(SOURCES))
def test_lossless_target_is_pixel_exact(name: str, target: str):
    data = _source_bytes(name)
    original = pydicom.dcmread(io.BytesIO(data))
    if (name, target) in REFUSED:
        with pytest.raises(TranscodeError, match="cannot hold"):
            _transcode(data, target)
        return
    result_bytes = _transcode(data, target)
    if original.file_meta.TransferSyntaxUID == target:
        assert result_bytes == data
        return
    result = _check_part10(result_bytes, target)
    assert np.array_equal(_pixels(result), _pixels(original))
    assert result.SOPInstanceUID == original.SOPInstanceUID
    frames = int(original.get("NumberOfFrames", 1) or 1)
    assert int(result.get("NumberOfFrames", 1) or 1) == frames
    assert result["PixelData"].is_undefined_length and result["PixelData"].VR == "OB"
    assert len(list(generate_frames(result.PixelData, number_of_frames=frames))) == frames
    if result.SamplesPerPixel > 1:
        assert result.PlanarConfiguration == 0
    if name in LOSSY_SOURCES:
        assert result.LossyImageCompression == "01"
        assert result.LossyImageCompressionMethod == "ISO_10918_1"
    else:
        assert result.get("LossyImageCompression") == original.get("LossyImageCompression")


@pytest.mark.parametrize("target", sorted(NATIVE_TARGETS), ids=codecs.describe)
@pytest.mark.parametrize(
    "name",
    [
        "MR_small_bigendian.dcm",
        "OBXXXX1A_expb.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "US1_J2KR.dcm",
        "image_dfl.dcm",
        "liver.dcm",
        "rtdose_rle.dcm",
    ],
)
def test_native_target_is_pixel_exact(name: str, target: str):
    data = corpus_file(name).read_bytes()
    original = pydicom.dcmread(io.BytesIO(data))
    result_bytes = _transcode(data, target)
    if original.file_meta.TransferSyntaxUID == target:
        assert result_bytes == data
        return
    result = _check_part10(result_bytes, target)
    assert np.array_equal(_pixels(result), _pixels(original))


def test_compressed_to_native_fixes_the_image_pixel_module():
    lossy = pydicom.dcmread(
        io.BytesIO(_transcode(corpus_file("SC_rgb_jpeg_dcmtk.dcm").read_bytes(), EXPLICIT_VR_LE))
    )
    assert lossy.PhotometricInterpretation == "RGB"  # decoded as a viewer shows it
    assert lossy.PlanarConfiguration == 0
    assert lossy.LossyImageCompression == "01"
    assert lossy["PixelData"].VR == "OB" and not lossy["PixelData"].is_undefined_length
    assert len(lossy.PixelData) == 100 * 100 * 3
    mct = pydicom.dcmread(io.BytesIO(_transcode(corpus_file("US1_J2KR.dcm").read_bytes(), EXPLICIT_VR_LE)))
    assert mct.PhotometricInterpretation == "RGB"  # YBR_RCT undone by the codec
    assert "LossyImageCompression" not in mct or mct.LossyImageCompression == "00"


def to_part10_like(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_ybr_full_stays_ybr_full_when_lossless():
    data = corpus_file("SC_ybr_full_422_uncompressed.dcm").read_bytes()
    original = pydicom.dcmread(io.BytesIO(data))
    raw, _ = get_decoder(EXPLICIT_VR_LE).as_array(original, raw=True)
    result = pydicom.dcmread(io.BytesIO(_transcode(data, RLE_LOSSLESS)))
    assert result.PhotometricInterpretation == "YBR_FULL"  # upsampled, not converted
    decoded, _ = get_decoder(RLE_LOSSLESS).as_array(result, raw=True)
    assert np.array_equal(decoded, raw)


def test_big_endian_lookup_tables_are_byte_swapped():
    little = pydicom.dcmread(corpus_file("OBXXXX1A.dcm"))
    result = pydicom.dcmread(
        io.BytesIO(_transcode(corpus_file("OBXXXX1A_expb.dcm").read_bytes(), EXPLICIT_VR_LE))
    )
    for keyword in ("Red", "Green", "Blue"):
        name = f"{keyword}PaletteColorLookupTableData"
        assert result[name].value == little[name].value
    assert np.array_equal(result.pixel_array, little.pixel_array)


def test_elements_after_pixel_data_are_kept():
    ds = make_dataset(rows=32, columns=40)
    ds.add_new(0x7FE10010, "LO", "ARCHWAY TEST")
    ds.add_new(0x7FE11001, "LO", "after the pixels")
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)  # Data Set Trailing Padding
    data = to_part10(ds)
    for target in (HTJ2K_LOSSLESS, IMPLICIT_VR_LE):
        compressed = _transcode(data, target)
        for result_bytes in (compressed, _transcode(compressed, EXPLICIT_VR_LE)):
            result = pydicom.dcmread(io.BytesIO(result_bytes))
            value = result[0x7FE11001].value  # UN once it has been through implicit VR
            assert (value if isinstance(value, str) else value.decode()) == "after the pixels"
            assert np.array_equal(result.pixel_array, ds.pixel_array)
    assert 0xFFFCFFFC not in pydicom.dcmread(io.BytesIO(_transcode(data, HTJ2K_LOSSLESS)))


def test_same_syntax_is_an_untouched_copy():
    data = corpus_file("emri_small_jpeg_2k_lossless.dcm").read_bytes()
    assert _transcode(data, JPEG_2000_LOSSLESS) == data
    assert _transcode(data, "*") == data
    lossy = corpus_file("SC_rgb_jpeg_dcmtk.dcm").read_bytes()
    assert _transcode(lossy, JPEG_BASELINE) == lossy  # as stored, even a syntax we never produce


def test_reads_from_the_current_position_of_a_real_file():
    with tempfile.TemporaryFile() as handle:
        handle.write(b"junk before")
        start = handle.tell()
        handle.write(corpus_file("emri_small_jpeg_2k_lossless.dcm").read_bytes())
        handle.seek(start)
        output = transcode_instance(handle, EXPLICIT_VR_LE)
    with output:
        assert isinstance(output, tempfile.SpooledTemporaryFile)
        result = _check_part10(output.read(), EXPLICIT_VR_LE)
    assert result.pixel_array.shape == (10, 64, 64)


def test_without_pixel_data():
    ds = make_dataset()
    del ds.PixelData
    data = to_part10(ds)
    for target in (IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE):
        result = _check_part10(_transcode(data, target), target)
        assert result.PatientName == ds.PatientName
    with pytest.raises(TranscodeError, match="without pixel data"):
        _transcode(data, JPEG_2000_LOSSLESS)


def test_float_pixel_data():
    ds = make_dataset(rows=8, columns=6, modality="OT")
    for keyword in (
        "PixelData",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "RescaleIntercept",
        "RescaleSlope",
    ):
        delattr(ds, keyword)
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.linspace(-1.5, 2.5, 48, dtype="<f4").tobytes()
    data = to_part10(ds)
    result = _check_part10(_transcode(data, IMPLICIT_VR_LE), IMPLICIT_VR_LE)
    assert np.array_equal(result.pixel_array, ds.pixel_array)
    with pytest.raises(TranscodeError, match="float"):
        _transcode(data, HTJ2K_LOSSLESS)


# --- what cannot be done is a TranscodeError --------------------------------------------------------


def _with_syntax(path_or_data: Path | bytes, ts: str) -> bytes:
    data = path_or_data.read_bytes() if isinstance(path_or_data, Path) else path_or_data
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = ts
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


@pytest.mark.parametrize("target", [EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_2000_LOSSLESS])
def test_unknown_source_syntax(target):
    data = to_part10(make_dataset(), transfer_syntax="1.2.3.4.5")
    with pytest.raises(TranscodeError, match="unknown"):
        _transcode(data, target)


def test_source_syntax_without_a_decoder():
    data = _with_syntax(corpus_file("SC_rgb_jpeg_dcmtk.dcm"), "1.2.840.10008.1.2.4.100")  # MPEG-2
    with pytest.raises(TranscodeError, match="no decoder"):
        _transcode(data, EXPLICIT_VR_LE)


def test_decoder_not_installed(monkeypatch):
    monkeypatch.setattr(codecs, "decodable", lambda: frozenset(codecs.NATIVE_SYNTAXES))
    data = corpus_file("emri_small_jpeg_2k_lossless.dcm").read_bytes()
    with pytest.raises(TranscodeError, match="no decoder"):
        _transcode(data, EXPLICIT_VR_LE)
    with pytest.raises(TranscodeError, match="no decoder"):
        decode_frame(
            b"\xff\x4f",
            source_ts=JPEG_2000_LOSSLESS,
            pixel=PixelDescription(8, 8, 1, 16, 12, 0, "MONOCHROME2"),
        )


def test_target_not_installed(monkeypatch):
    data = to_part10(make_dataset())
    monkeypatch.setattr(codecs, "encodable", lambda: frozenset(NATIVE_TARGETS))
    with pytest.raises(TranscodeError, match="no working encoder"):
        _transcode(data, JPEG_2000_LOSSLESS)
    pixel = PixelDescription.from_dataset(make_dataset())
    with pytest.raises(TranscodeError, match="no working encoder"):
        encode_frame(bytes(512), pixel=pixel, target_ts=RLE_LOSSLESS)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (JPEG_BASELINE, "not produced here"),
        ("1.2.840.10008.1.2.4.91", "not produced here"),
        ("1.2.840.10008.1.2.4.203", "not produced here"),
        (EXPLICIT_VR_BE, "retired"),
        ("1.2.3.4", "not a transfer syntax"),
    ],
)
def test_targets_never_produced(target, message):
    with pytest.raises(TranscodeError, match=message):
        _transcode(to_part10(make_dataset()), target)


def test_unreadable_input():
    with pytest.raises(TranscodeError, match="not a readable DICOM"):
        _transcode(b"not DICOM at all" * 20, EXPLICIT_VR_LE)
    cuts = [
        ("emri_small_jpeg_2k_lossless.dcm", 20000),
        *(("CT_small.dcm", size) for size in (200, 300, 20000)),
    ]
    for name, size in cuts:
        with pytest.raises(TranscodeError, match=r"truncated|not a readable|no Transfer Syntax|No tag"):
            _transcode(corpus_file(name).read_bytes()[:size], IMPLICIT_VR_LE)
    with pytest.raises(TranscodeError, match="truncated"):
        _transcode(corpus_file("emri_small_jpeg_2k_lossless_too_short.dcm").read_bytes(), EXPLICIT_VR_LE)


def test_corrupt_codestream():
    ds = pydicom.dcmread(corpus_file("emri_small_jpeg_2k_lossless.dcm"))
    garbage = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + garbage] * 10)
    data = to_part10_like(ds)
    for target in (EXPLICIT_VR_LE, RLE_LOSSLESS):
        with pytest.raises(TranscodeError, match="cannot be decoded"):
            _transcode(data, target)


def test_pixels_a_target_cannot_hold():
    with pytest.raises(TranscodeError, match="Bits Allocated 32"):
        _transcode(corpus_file("rtdose.dcm").read_bytes(), HTJ2K_LOSSLESS)
    with pytest.raises(TranscodeError, match="Bits Allocated 1"):
        _transcode(corpus_file("liver.dcm").read_bytes(), RLE_LOSSLESS)


def test_one_log_line_per_transcode():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("rendering.transcode")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        _transcode(corpus_file("CT_small.dcm").read_bytes(), RLE_LOSSLESS)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(records) == 1
    message = records[0].getMessage()
    assert EXPLICIT_VR_LE in message and RLE_LOSSLESS in message and "bytes" in message and "ms" in message


# --- single frames ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_RLE.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "SC_rgb_rle_2frame.dcm",
        "US1_J2KR.dcm",
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ],
)
def test_decode_frame_matches_pydicom(name):
    ds = pydicom.dcmread(corpus_file(name))
    pixel = PixelDescription.from_dataset(ds)
    frames = list(generate_frames(ds.PixelData, number_of_frames=pixel.number_of_frames))
    expected = ds.pixel_array.reshape(
        pixel.number_of_frames, *ds.pixel_array.shape[-3 + (pixel.samples_per_pixel == 1) :]
    )
    raw, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, as_rgb=False)
    raw = raw.reshape(expected.shape)
    for index, frame in enumerate(frames):
        source = ds.file_meta.TransferSyntaxUID
        assert decode_frame(frame, source_ts=source, pixel=pixel, as_rgb=True) == expected[index].tobytes()
        assert decode_frame(frame, source_ts=source, pixel=pixel) == raw[index].tobytes()


def test_decode_frame_of_a_synthetic_multiframe_instance():
    ds = make_dataset(rows=40, columns=36, frames=3, pixel_seed=9)
    for target in LOSSLESS:
        compressed = pydicom.dcmread(io.BytesIO(_transcode(to_part10(ds), target)))
        pixel = PixelDescription.from_dataset(compressed)
        for index, frame in enumerate(generate_frames(compressed.PixelData, number_of_frames=3)):
            assert decode_frame(frame, source_ts=target, pixel=pixel) == ds.pixel_array[index].tobytes()


def test_decode_frame_native():
    ds = make_dataset(rows=8, columns=8)
    pixel = PixelDescription.from_dataset(ds)
    assert decode_frame(ds.PixelData, source_ts=EXPLICIT_VR_LE, pixel=pixel) == ds.PixelData
    big = pydicom.dcmread(corpus_file("MR_small_bigendian.dcm"))
    frame = decode_frame(big.PixelData, source_ts=EXPLICIT_VR_BE, pixel=PixelDescription.from_dataset(big))
    assert frame == big.pixel_array.astype("<i2").tobytes()
    ow = pydicom.dcmread(corpus_file("OBXXXX1A_expb.dcm"))  # 8-bit samples in OW words
    frame = decode_frame(
        ow.PixelData, source_ts=EXPLICIT_VR_BE, pixel=PixelDescription.from_dataset(ow), pixel_vr="OW"
    )
    assert frame == ow.pixel_array.tobytes()


def test_decode_frame_errors():
    pixel = PixelDescription(16, 16, 1, 16, 12, 0, "MONOCHROME2")
    with pytest.raises(TranscodeError, match="cannot be decoded"):
        decode_frame(b"\xff\x4f\xff\x51" + bytes(100), source_ts=JPEG_2000_LOSSLESS, pixel=pixel)
    with pytest.raises(TranscodeError, match="no decoder"):
        decode_frame(bytes(100), source_ts="1.2.840.10008.1.2.4.100", pixel=pixel)


def _frames_for_encoding():
    rng = np.random.default_rng(21)
    mono = rng.integers(0, 4096, (37, 45)).astype("<u2")
    signed = rng.integers(-32768, 32768, (37, 45)).astype("<i2")
    mono8 = rng.integers(0, 256, (37, 45)).astype("u1")
    rgb = rng.integers(0, 256, (37, 45, 3)).astype("u1")
    ybr422 = pydicom.dcmread(corpus_file("SC_ybr_full_422_uncompressed.dcm"))
    upsampled, _ = get_decoder(EXPLICIT_VR_LE).as_array(ybr422, raw=True)
    return {
        "16-bit unsigned": (mono.tobytes(), PixelDescription(37, 45, 1, 16, 12, 0, "MONOCHROME2"), mono),
        "16-bit signed": (signed.tobytes(), PixelDescription(37, 45, 1, 16, 16, 1, "MONOCHROME2"), signed),
        "8-bit": (mono8.tobytes(), PixelDescription(37, 45, 1, 8, 8, 0, "MONOCHROME1"), mono8),
        "8-bit RGB": (rgb.tobytes(), PixelDescription(37, 45, 3, 8, 8, 0, "RGB"), rgb),
        "8-bit RGB planar": (
            rgb.transpose(2, 0, 1).tobytes(),
            PixelDescription(37, 45, 3, 8, 8, 0, "RGB", planar_configuration=1),
            rgb,
        ),
        "YBR_FULL_422 as stored": (ybr422.PixelData, PixelDescription.from_dataset(ybr422), upsampled),
        "YBR_FULL_422 upsampled": (upsampled.tobytes(), PixelDescription.from_dataset(ybr422), upsampled),
    }


FRAMES = _frames_for_encoding()


@pytest.mark.parametrize("target", LOSSLESS, ids=codecs.describe)
@pytest.mark.parametrize("name", list(FRAMES))
def test_encode_frame_round_trips(name, target):
    native, pixel, expected = FRAMES[name]
    if name.startswith("YBR") and target in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        with pytest.raises(TranscodeError, match="YBR_FULL"):
            encode_frame(native, pixel=pixel, target_ts=target)
        return
    codestream = encode_frame(native, pixel=pixel, target_ts=target)
    decoded_pixel = PixelDescription(
        pixel.rows,
        pixel.columns,
        pixel.samples_per_pixel,
        pixel.bits_allocated,
        pixel.bits_stored,
        pixel.pixel_representation,
        "YBR_FULL" if name.startswith("YBR") else pixel.photometric_interpretation,
    )
    assert decode_frame(codestream, source_ts=target, pixel=decoded_pixel) == expected.tobytes()


@pytest.mark.parametrize("target", [JPEG_2000_LOSSLESS, HTJ2K_LOSSLESS, RLE_LOSSLESS])
def test_a_lossy_ybr_frame_re_encoded_as_the_frames_view_does(target):
    # The frames view decodes a stored frame (default: colour space kept) and encodes it with the
    # instance's own pixel description, whose Photometric Interpretation is still YBR_FULL_422.
    ds = pydicom.dcmread(corpus_file("SC_rgb_dcmtk_+eb+cy+s2.dcm"))
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    pixel = PixelDescription.from_dataset(ds)
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    native = decode_frame(frame, source_ts=ds.file_meta.TransferSyntaxUID, pixel=pixel)
    codestream = encode_frame(native, pixel=pixel, target_ts=target)
    decoded = decode_frame(codestream, source_ts=target, pixel=pixel, as_rgb=True)
    assert decoded == ds.pixel_array.tobytes()  # the colours a viewer shows, exactly


@pytest.mark.parametrize("target", [EXPLICIT_VR_LE, JPEG_BASELINE, "1.2.840.10008.1.2.4.91"])
def test_encode_frame_only_to_lossless_compressed_targets(target):
    native, pixel, _ = FRAMES["16-bit unsigned"]
    with pytest.raises(TranscodeError):
        encode_frame(native, pixel=pixel, target_ts=target)


def test_encode_frame_refuses_a_frame_that_does_not_match_its_description():
    native, pixel, _ = FRAMES["16-bit unsigned"]
    with pytest.raises(TranscodeError, match="does not match"):
        encode_frame(native[:100], pixel=pixel, target_ts=RLE_LOSSLESS)


# --- pixel descriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "emri_small_jpeg_2k_lossless.dcm", "SC_rgb_rle_2frame.dcm", "US1_UNCR.dcm"]
)
def test_pixel_description_from_dataset_and_json_agree(name):
    ds = pydicom.dcmread(corpus_file(name), stop_before_pixels=True)
    described = PixelDescription.from_dataset(ds)
    assert PixelDescription.from_json(ds.to_json_dict()) == described
    assert described.rows == ds.Rows and described.bits_stored == ds.BitsStored
    assert described.number_of_frames == int(ds.get("NumberOfFrames", 1) or 1)


def test_pixel_description_from_json_details():
    described = PixelDescription.from_json(
        {
            "00280010": {"vr": "US", "Value": [512]},
            "00280011": {"vr": "US", "Value": [256]},
            "00280100": {"vr": "US", "Value": [16]},
            "00280101": {"vr": "US", "Value": [12]},
            "00280008": {"vr": "IS", "Value": ["3"]},
            "00280004": {"vr": "CS", "Value": ["MONOCHROME1"]},
            "00280103": {"vr": "US"},
        }
    )
    assert described == PixelDescription(512, 256, 1, 16, 12, 0, "MONOCHROME1", 0, 3)
    assert described.frame_length == 512 * 256 * 2
    with pytest.raises(TranscodeError, match="Rows"):
        PixelDescription.from_json({"00280011": {"vr": "US", "Value": [256]}})
    with pytest.raises(TranscodeError, match="Bits Stored"):
        PixelDescription(8, 8, 1, 8, 12, 0, "MONOCHROME2")
