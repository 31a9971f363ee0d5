"""What can be decoded and produced here, the encoder self-test, frame media types."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from rendering import codecs
from rendering.codecs import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    HTJ2K_LOSSLESS,
    HTJ2K_LOSSLESS_RPCL,
    IMPLICIT_VR_LE,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    LOSSLESS_TARGETS,
    LOSSY_SYNTAXES,
    MAYBE_LOSSY_SYNTAXES,
    NATIVE_SYNTAXES,
    NATIVE_TARGETS,
    RLE_LOSSLESS,
)

ADVERTISED_LOSSLESS = sorted(codecs.encodable() & LOSSLESS_TARGETS)


def test_native_syntaxes_are_always_decodable():
    assert codecs.decodable() >= NATIVE_SYNTAXES


def test_installed_decoders_are_found():
    # pylibjpeg-openjpeg and pylibjpeg-rle are required dependencies; pydicom decodes RLE itself.
    assert {JPEG_2000_LOSSLESS, RLE_LOSSLESS, HTJ2K_LOSSLESS} <= codecs.decodable()
    assert "1.2.840.10008.1.2.4.100" not in codecs.decodable()  # MPEG-2: no decoder


def test_advertised_targets_here():
    targets = codecs.encodable()
    assert {EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE} <= targets
    assert JPEG_2000_LOSSLESS in targets
    # Every encoder that pyproject.toml installs passes its self-test here.
    assert {RLE_LOSSLESS, JPEG_LS_LOSSLESS, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, JPEG_LOSSLESS_SV1} <= targets


def test_never_a_lossy_or_big_endian_target():
    targets = codecs.encodable()
    assert targets <= NATIVE_TARGETS | LOSSLESS_TARGETS
    assert not targets & (LOSSY_SYNTAXES | MAYBE_LOSSY_SYNTAXES | {EXPLICIT_VR_BE})


def test_encodable_is_computed_once():
    assert codecs.encodable() is codecs.encodable()
    assert codecs.decodable() is codecs.decodable()


@pytest.mark.parametrize("ts", ADVERTISED_LOSSLESS, ids=codecs.describe)
def test_self_test_passes(ts):
    assert codecs.self_test(ts)
    assert codecs.provider(ts)


def test_self_test_rejects_an_encoder_that_is_not_lossless(monkeypatch):
    genuine = codecs._installed_encoders()[RLE_LOSSLESS]

    def off_by_one(arr, frame):
        altered = arr.copy()
        altered.flat[7] ^= 1
        return genuine.encode(altered, frame)

    broken = codecs._Encoder(RLE_LOSSLESS, "broken", off_by_one)
    monkeypatch.setattr(codecs, "_installed_encoders", lambda: MappingProxyType({RLE_LOSSLESS: broken}))
    assert codecs.self_test.__wrapped__(RLE_LOSSLESS) is False


def test_self_test_rejects_an_encoder_that_raises(monkeypatch):
    def failing(arr, frame):
        raise codecs.CodecError("no")

    broken = codecs._Encoder(RLE_LOSSLESS, "broken", failing)
    monkeypatch.setattr(codecs, "_installed_encoders", lambda: MappingProxyType({RLE_LOSSLESS: broken}))
    assert codecs.self_test.__wrapped__(RLE_LOSSLESS) is False
    assert codecs.self_test.__wrapped__(JPEG_LS_LOSSLESS) is False  # not installed at all


def test_describe():
    assert codecs.describe(JPEG_2000_LOSSLESS) == "JPEG 2000 Image Compression (Lossless Only)"
    assert codecs.describe(EXPLICIT_VR_LE) == "Explicit VR Little Endian"
    assert codecs.describe("1.2.3.4.5") == "1.2.3.4.5"
    assert codecs.describe("*") == "as stored"


def test_frame_media_types_follow_ps3_18_table_8_7_3_5():
    table = codecs.frame_media_types()
    expected = {
        "application/octet-stream": (EXPLICIT_VR_LE, {EXPLICIT_VR_LE, "*"}),
        "image/jpeg": (
            JPEG_BASELINE,
            {JPEG_BASELINE, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", JPEG_LOSSLESS_SV1},
        ),
        "image/jls": (JPEG_LS_LOSSLESS, {JPEG_LS_LOSSLESS, "1.2.840.10008.1.2.4.81"}),
        "image/jp2": (JPEG_2000_LOSSLESS, {JPEG_2000_LOSSLESS, "1.2.840.10008.1.2.4.91"}),
        "image/jphc": (HTJ2K_LOSSLESS, {HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, "1.2.840.10008.1.2.4.203"}),
        "image/x-dicom-rle": (RLE_LOSSLESS, {RLE_LOSSLESS}),
    }
    for media_type, (default, syntaxes) in expected.items():
        entry = table[media_type]
        assert entry.media_type == media_type
        assert entry.default_transfer_syntax == default
        assert set(entry.transfer_syntaxes) == syntaxes
        assert default in entry.transfer_syntaxes
    with pytest.raises(TypeError):
        table["image/png"] = table["image/jp2"]  # read-only


@pytest.mark.parametrize(
    ("ts", "media_type"),
    [
        (EXPLICIT_VR_LE, "application/octet-stream"),
        (EXPLICIT_VR_BE, "application/octet-stream"),
        (JPEG_BASELINE, "image/jpeg"),
        (JPEG_LOSSLESS_SV1, "image/jpeg"),
        (JPEG_LS_LOSSLESS, "image/jls"),
        (JPEG_2000_LOSSLESS, "image/jp2"),
        (HTJ2K_LOSSLESS_RPCL, "image/jphc"),
        (RLE_LOSSLESS, "image/x-dicom-rle"),
    ],
)
def test_frame_media_type(ts, media_type):
    assert codecs.frame_media_type(ts) == media_type


# --- encode_array ---------------------------------------------------------------------------------


def _roundtrip(arr, ts, *, bits_stored, pixel_representation, pi="MONOCHROME2"):
    data = codecs.encode_array(
        arr,
        transfer_syntax=ts,
        photometric_interpretation=pi,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
    )
    decoded, _ = codecs.decode_codestream(
        data,
        transfer_syntax=ts,
        rows=arr.shape[0],
        columns=arr.shape[1],
        samples_per_pixel=arr.shape[2] if arr.ndim == 3 else 1,
        bits_allocated=arr.dtype.itemsize * 8,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
        photometric_interpretation=pi,
    )
    return data, decoded


@pytest.mark.parametrize("shape", [(1, 1), (8, 5), (16, 16), (31, 40)], ids=str)
def test_jpeg_2000_encodes_frames_smaller_than_openjpeg_allows(shape):
    # pylibjpeg-openjpeg always codes 6 resolutions, too many under 32 pixels.
    rng = np.random.default_rng(3)
    mono = rng.integers(-2048, 2048, shape).astype(np.int16)
    _, decoded = _roundtrip(
        mono, JPEG_2000_LOSSLESS, bits_stored=12, pixel_representation=1, pi="MONOCHROME2"
    )
    assert np.array_equal(decoded, mono)
    rgb = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    _, decoded = _roundtrip(rgb, JPEG_2000_LOSSLESS, bits_stored=8, pixel_representation=0, pi="RGB")
    assert np.array_equal(decoded, rgb)


def test_jpeg_ls_encodes_tiny_frames():
    rgb = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)
    _, decoded = _roundtrip(rgb, JPEG_LS_LOSSLESS, bits_stored=8, pixel_representation=0, pi="RGB")
    assert np.array_equal(decoded, rgb)


def _markers(codestream: bytes) -> dict[int, bytes]:
    """The main-header marker segments of a JPEG 2000 codestream (up to the first SOT)."""
    found, pos = {}, 2
    while pos + 4 <= len(codestream):
        marker = int.from_bytes(codestream[pos : pos + 2], "big")
        if marker == 0xFF90:  # SOT
            break
        length = int.from_bytes(codestream[pos + 2 : pos + 4], "big")
        found[marker] = codestream[pos + 4 : pos + 2 + length]
        pos += 2 + length
    return found


@pytest.mark.parametrize("shape", [(512, 512), (80, 4100)], ids=str)
def test_htj2k_rpcl_codestream_meets_ps3_5(shape):
    arr = np.random.default_rng(5).integers(0, 4096, shape).astype(np.uint16)
    data, decoded = _roundtrip(
        arr, HTJ2K_LOSSLESS_RPCL, bits_stored=12, pixel_representation=0, pi="MONOCHROME2"
    )
    assert np.array_equal(decoded, arr)
    markers = _markers(data)
    assert data[:4] == b"\xff\x4f\xff\x51"  # a raw codestream (SOC, SIZ), not a JP2/JPH file
    assert 0xFF50 in markers  # CAP: HTJ2K (Part 15) codestream
    assert 0xFF55 in markers  # TLM markers
    cod = markers[0xFF52]
    assert cod[1] == 2  # progression order RPCL
    decompositions = cod[5]
    assert max(shape) / 2**decompositions <= 64  # a thumbnail resolution of at most 64 pixels
    assert cod[8] & 0x40  # HT block coder
    assert cod[9] == 1  # reversible 5-3 wavelet


def test_htj2k_keeps_rgb_without_a_component_transform():
    rgb = np.random.default_rng(6).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    data, decoded = _roundtrip(rgb, HTJ2K_LOSSLESS, bits_stored=8, pixel_representation=0, pi="RGB")
    assert np.array_equal(decoded, rgb)
    assert _markers(data)[0xFF52][4] == 0  # no MCT: Photometric Interpretation stays RGB


def test_jpeg_lossless_sv1_uses_predictor_1():
    arr = np.random.default_rng(7).integers(-2048, 2048, (40, 33)).astype(np.int16)
    data, decoded = _roundtrip(
        arr, JPEG_LOSSLESS_SV1, bits_stored=12, pixel_representation=1, pi="MONOCHROME2"
    )
    assert np.array_equal(decoded, arr)
    sof3 = data.index(b"\xff\xc3")
    assert data[sof3 + 4] == 12  # sample precision = Bits Stored
    sos = data.index(b"\xff\xda")
    components = data[sos + 4]
    ss, se, ahal = data[sos + 5 + 2 * components : sos + 8 + 2 * components]
    assert (ss, se, ahal) == (1, 0, 0)  # selection value 1, point transform 0


@pytest.mark.parametrize(
    ("arr", "kwargs", "message"),
    [
        (np.zeros((8, 8), np.float32), {"pixel_representation": 0, "bits_stored": 32}, "float32"),
        (np.zeros((8, 8), np.uint32), {"pixel_representation": 0, "bits_stored": 32}, "cannot"),
        (np.zeros((8, 8), np.uint16), {"pixel_representation": 1, "bits_stored": 16}, "Pixel Representation"),
        (np.full((8, 8), 5000, np.uint16), {"pixel_representation": 0, "bits_stored": 12}, "range"),
    ],
    ids=["float", "32-bit", "sign-mismatch", "out-of-range"],
)
def test_encode_array_refuses_what_a_target_cannot_hold(arr, kwargs, message):
    with pytest.raises(codecs.CodecError, match=message):
        codecs.encode_array(
            arr, transfer_syntax=HTJ2K_LOSSLESS, photometric_interpretation="MONOCHROME2", **kwargs
        )


def test_encode_array_refuses_a_target_without_an_encoder():
    with pytest.raises(codecs.CodecError, match="no encoder"):
        codecs.encode_array(
            np.zeros((8, 8), np.uint8),
            transfer_syntax=JPEG_BASELINE,
            photometric_interpretation="MONOCHROME2",
            bits_stored=8,
            pixel_representation=0,
        )
